// What every benchmark here sends and how it starts Keyward, shared by run.mjs and instructions.mjs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(BENCH);
export const SERVER = path.join(ROOT, 'dist', 'src', 'server.js');
export const UPSTREAM_KEY = 'sk-bench-upstream-0123456789';
export const CLIENT_KEY = 'sk-bench-client-0123456789';
export const WRONG_KEY = 'sk-bench-wrong-00000000000';

const messages = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Write one sentence about a fox.' },
];
export const chatBody = { model: 'gpt-4o-mini', messages, max_tokens: 64 };
export const streamBody = { ...chatBody, stream: true, stream_options: { include_usage: true } };
export const CHAT = JSON.stringify(chatBody);
export const STREAM = JSON.stringify(streamBody);

/** The `--flag=value` arguments of package.json's start script (e.g. the V8 young-generation size). */
export function startFlags() {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return pkg.scripts.start.split(/\s+/).filter((a) => /^--[\w-]+=\S+$/.test(a));
}

/** The mock upstream's environment: any free port, the upstream key required, `chunks` per stream. */
export function mockEnv(baseEnv, chunks) {
  return { ...baseEnv, MOCK_PORT: '0', MOCK_REQUIRE_KEY: UPSTREAM_KEY, MOCK_CHUNKS: String(chunks), MOCK_CHUNK_DELAY_MS: '0' };
}

/** The bare proxy's environment: the client key checked, swapped for the upstream key. */
export function bareEnv(baseEnv, upstreamUrl) {
  return { ...baseEnv, PORT: '0', UPSTREAM_URL: upstreamUrl, UPSTREAM_KEY, CLIENT_KEY };
}

/** Keyward's environment in a benchmark: one key, metering to SQLite and the access log on. */
export function keywardEnv(baseEnv, workDir, upstreamUrl, logLevel) {
  return {
    ...baseEnv,
    OPENAI_API_KEY: UPSTREAM_KEY,
    OPENAI_BASE_URL: upstreamUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    KEYS_FILE: path.join(workDir, 'keys.json'),
    USAGE_DB: path.join(workDir, 'usage.sqlite'),
    ACCESS_LOG: path.join(workDir, 'access.log'),
    LOG_LEVEL: logLevel,
  };
}

/** keys.json with the one client key. */
export const KEYS_JSON = `${JSON.stringify([{ key: CLIENT_KEY, name: 'bench', email: 'bench@example.com' }], null, 2)}\n`;
