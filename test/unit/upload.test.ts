import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Upload } from '../../src/proxy/upload.js';

/** A stand-in for a request body: a Readable with IncomingMessage's `complete` flag. */
function fakeRequest(): Readable & { complete: boolean; send(...chunks: string[]): void; finish(): void } {
  const req = new Readable({ read() {} }) as Readable & { complete: boolean; send(...c: string[]): void; finish(): void };
  req.complete = false;
  req.send = (...chunks) => chunks.forEach((c) => req.push(Buffer.from(c)));
  req.finish = () => {
    req.complete = true;
    req.push(null);
  };
  return req;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Upload (a request body as undici reads it)', () => {
  it('yields the chunks in order and ends with the request; onChunk sees each one first', async () => {
    const req = fakeRequest();
    const seen: string[] = [];
    const upload = new Upload(req as unknown as IncomingMessage, (c) => seen.push(c.toString()));
    req.send('a', 'bc');
    setTimeout(() => {
      req.send('def');
      req.finish();
    }, 5);
    const got: string[] = [];
    for await (const chunk of upload) got.push(chunk.toString());
    expect(got.join('')).toBe('abcdef');
    expect(seen.join('')).toBe('abcdef');
    expect(upload.unfinished).toBe(false);
  });

  it('holds at most one chunk: the request is paused until the reader takes it', async () => {
    const req = fakeRequest();
    const upload = new Upload(req as unknown as IncomingMessage, () => {});
    req.send('one', 'two', 'three');
    await tick();
    expect(req.isPaused()).toBe(true);
    expect(req.readableLength).toBeGreaterThan(0); // the rest waits in the request, not here
    expect((await upload.next()).value?.toString()).toBe('one');
    await tick();
    const rest: string[] = [];
    req.finish();
    for await (const chunk of upload) rest.push(chunk.toString());
    expect(rest.join('')).toBe('twothree');
  });

  it('fails, never ends cleanly, when the client leaves mid-body (a chunked upload would look complete)', async () => {
    const req = fakeRequest();
    const upload = new Upload(req as unknown as IncomingMessage, () => {});
    req.send('part');
    expect((await upload.next()).value?.toString()).toBe('part');
    const pending = upload.next();
    req.destroy();
    await expect(pending).rejects.toThrow(/stopped sending/);
    await expect(upload.next()).rejects.toThrow(/stopped sending/);
  });

  it('drop(): the reader fails, the rest of the body is read and neither counted nor yielded', async () => {
    const req = fakeRequest();
    let counted = 0;
    const upload = new Upload(req as unknown as IncomingMessage, (c) => (counted += c.length));
    req.send('12345');
    await tick();
    upload.drop();
    await expect(upload.next()).rejects.toThrow(/dropped/);
    req.send('67890', 'more');
    let ended = false;
    req.once('end', () => (ended = true));
    req.finish();
    await tick();
    await tick();
    expect(ended).toBe(true); // read to its end: the client's connection stays usable
    expect(counted).toBe(5);
  });

  it('drop() from inside onChunk (over the limit) stops at that chunk', async () => {
    const req = fakeRequest();
    const upload: Upload = new Upload(req as unknown as IncomingMessage, (c) => c.toString() === 'too-big' && upload.drop());
    req.send('ok', 'too-big', 'after');
    expect((await upload.next()).value?.toString()).toBe('ok');
    await expect(upload.next()).rejects.toThrow(/dropped/);
  });

  it('unfinished until the body is read to its end, even when its last byte waits behind a pause', async () => {
    const req = fakeRequest();
    const upload = new Upload(req as unknown as IncomingMessage, () => {});
    req.send('a', 'b');
    req.finish(); // every byte has arrived (req.complete), two chunks still unread
    await tick();
    expect(req.complete).toBe(true);
    expect(upload.unfinished).toBe(true);
    upload.drop(); // an early answer: the rest is read and dropped, then the answer may end
    let rested = false;
    upload.afterRest(() => (rested = true), 10_000);
    await tick();
    await tick();
    expect(rested).toBe(true);
    expect(upload.unfinished).toBe(false);
  });

  it('return() (undici gave up) lets go of the request without destroying it', async () => {
    const req = fakeRequest();
    const upload = new Upload(req as unknown as IncomingMessage, () => {});
    req.send('x');
    await upload.next();
    await upload.return();
    expect(req.destroyed).toBe(false);
    expect(req.listenerCount('data')).toBe(0);
    await expect(upload.next()).rejects.toThrow(/stopped reading/);
  });

  it('afterRest() calls back once, when the rest is in or after the time limit', async () => {
    const req = fakeRequest();
    const upload = new Upload(req as unknown as IncomingMessage, () => {});
    upload.drop();
    let calls = 0;
    upload.afterRest(() => calls++, 10_000);
    req.finish();
    await tick();
    await tick();
    expect(calls).toBe(1);
    expect(req.listenerCount('end') + req.listenerCount('close')).toBe(0);

    const silent = fakeRequest();
    const stuck = new Upload(silent as unknown as IncomingMessage, () => {});
    let timedOut = 0;
    stuck.afterRest(() => timedOut++, 20);
    await new Promise((r) => setTimeout(r, 60));
    expect(timedOut).toBe(1);
    silent.destroy();
    await tick();
    expect(timedOut).toBe(1);
  });
});
