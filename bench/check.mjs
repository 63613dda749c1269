// Preflight: before anything is measured, each target must really work, or its figures mean nothing.
// JSON chat (200 with usage), SSE chat (every chunk, the usage chunk and [DONE]), a small embeddings
// POST, and a wrong key (401). Returns the number of requests it sent that should be metered.

async function post(base, path, headers, body) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, text: await res.text() };
}

export async function checkTarget(name, base, headers, badHeaders, { chatBody, streamBody, chunks }) {
  const fail = (what) => {
    throw new Error(`${name} failed the preflight check: ${what}`);
  };
  const chat = await post(base, '/v1/chat/completions', headers, chatBody);
  if (chat.status !== 200) fail(`JSON chat answered ${chat.status}: ${chat.text.slice(0, 200)}`);
  if (!JSON.parse(chat.text).usage?.total_tokens) fail('JSON chat answer has no usage');

  const sse = await post(base, '/v1/chat/completions', headers, streamBody);
  if (sse.status !== 200) fail(`SSE chat answered ${sse.status}: ${sse.text.slice(0, 200)}`);
  const data = sse.text.split('\n\n').filter((e) => e.includes('data: '));
  const expected = chunks + 4; // role, content chunks, finish, usage, [DONE]
  if (data.length !== expected) fail(`SSE chat gave ${data.length} events, expected ${expected}`);
  if (!data.at(-1).includes('data: [DONE]')) fail('SSE chat did not end with data: [DONE]');
  if (!data.at(-2).includes('"usage"')) fail('SSE chat has no usage chunk before [DONE]');

  const emb = await post(base, '/v1/embeddings', headers, { model: 'text-embedding-3-small', input: 'hello' });
  if (emb.status !== 200) fail(`embeddings answered ${emb.status}: ${emb.text.slice(0, 200)}`);

  const bad = await post(base, '/v1/chat/completions', badHeaders, chatBody);
  if (bad.status !== 401) fail(`a wrong key got ${bad.status}, expected 401`);
  return 3;
}
