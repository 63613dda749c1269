// Runs the mock OpenAI as its own process (e.g. for end-to-end tests or manual curl sessions).
// Env: PORT (default 0 = random), MOCK_KEYS (comma-separated accepted upstream keys),
// OPENAI_FIXTURES_DIR (default ../shared/openai-fixtures from the working directory).
import { startMockOpenAI } from './server.js';

const keys = process.env.MOCK_KEYS?.split(',').map((k) => k.trim()).filter((k) => k.length > 0);
const mock = await startMockOpenAI({
  port: Number(process.env.PORT ?? 0),
  ...(keys && keys.length > 0 ? { keys } : {}),
});
// The URL alone on stdout, so a parent process can read it from the first line.
console.log(mock.url);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void mock.close().then(() => process.exit(0));
  });
}
