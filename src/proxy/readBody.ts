import type { IncomingMessage } from 'node:http';

export class BodyTooLarge extends Error {}

/**
 * Reads a whole request body, failing as soon as it passes maxBytes. `done` is called once. A
 * callback rather than a promise: this runs for every chat request, and the promise with the two
 * async functions around it cost ~1 KB of garbage a request (measured: 25.0 → 24.0 KB allocated).
 */
export function readBody(req: IncomingMessage, maxBytes: number, done: (err: Error | undefined, body?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (err: Error | undefined, body?: Buffer) => {
    if (settled) return;
    settled = true;
    done(err, body);
  };
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) {
      req.off('data', onData);
      req.resume(); // drain the rest; the answer is 413 either way
      settle(new BodyTooLarge());
      return;
    }
    chunks.push(chunk);
  };
  req.on('data', onData);
  req.once('end', () => settle(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
  req.once('error', (err) => settle(err));
}
