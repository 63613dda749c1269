import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { newContext } from '../../src/http/requestContext.js';
import { AccessLog } from '../../src/logging/accessLog.js';
import type { KeyRecord } from '../../src/keys/types.js';
import type { UsageRow } from '../../src/storage/usageStore.js';

function readLines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('AccessLog', () => {
  it('writes one pino-format JSON line per request, and a lone line reaches the file within seconds', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kw-log-')), 'logs', 'access.log');
    const log = new AccessLog(file, false);
    const ctx = newContext({ url: '/v1/chat/completions?x=1', method: 'POST', headers: {} } as IncomingMessage);
    ctx.requestModel = 'gpt-4o-mini';
    ctx.bodyJson = { secret: 'not logged without logBodies' };
    log.write(ctx, 200, 12.5, undefined);
    // Well under the 32 KB batch: only the periodic flush can bring it to the file.
    const deadline = Date.now() + 5000;
    while (readLines(file).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const lines = readLines(file);
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({ level: 30, request_id: ctx.id, method: 'POST', path: '/v1/chat/completions', status: 200, latency_ms: 12.5, model: 'gpt-4o-mini' });
    expect(Number.isNaN(Date.parse(String(line.time)))).toBe(false);
    expect(line).not.toHaveProperty('request_body');
    expect(line).not.toHaveProperty('outcome'); // undefined fields are left out, as pino does
    await log.close();
  });

  it('escapes what clients and key files wrote, and keeps multi-byte lines whole across batches', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kw-log-')), 'access.log');
    const log = new AccessLog(file, false);
    const key = { id: 'k_1', digest: 'd', name: 'Zoë "the \\ admin"\n😀', email: 'zoë@例え.jp', disabled: false, expiresAt: undefined, source: 'keys.json', policy: {} } as unknown as KeyRecord;
    const expected: Record<string, unknown>[] = [];
    for (let i = 0; i < 3000; i++) {
      // Multi-byte lines over many 32 KB batches, a line at every kind of boundary, and some of
      // 45 KB in UTF-8 (15,000 characters): more than the rest of a half-full batch can take.
      const ctx = newContext({ url: `/v1/chat/completions"\\${'€'.repeat(i % 97)}?q=1`, method: 'POST', headers: {} } as IncomingMessage);
      ctx.principal = key;
      ctx.upstreamRequestId = 'req_\u0001"';
      const row = { model: `gpt-4o-mini-${'日本'.repeat(i % 13)}`, ttfb_ms: i % 2 ? 1.5 : null, input_tokens: i, output_tokens: null, total_tokens: i,
        cost_nano_usd: i % 3 ? 1500 : null, outcome: 'ok', error: i % 500 === 250 ? '€'.repeat(15_000 + i) : i % 5 ? null : 'broke "mid-stream"\t' } as unknown as UsageRow;
      log.write(ctx, 200, i === 7 ? Number.NaN : i / 3, row);
      expected.push({
        level: 30, request_id: ctx.id, key_id: 'k_1', key_name: key.name, key_email: key.email, method: 'POST', path: ctx.path, status: 200,
        latency_ms: i === 7 ? null : i / 3, ...(i % 2 ? { ttfb_ms: 1.5 } : {}), model: row.model, stream: false, input_tokens: i, output_tokens: null,
        total_tokens: i, cost_usd: i % 3 ? 1.5e-6 : null, outcome: 'ok', upstream_request_id: 'req_\u0001"', ...(row.error ? { error: row.error } : {}),
      });
    }
    await log.close();
    const lines = readLines(file);
    expect(lines).toHaveLength(3000);
    lines.forEach((line, i) => {
      const { time, ...rest } = line;
      expect(Number.isNaN(Date.parse(String(time)))).toBe(false);
      expect(rest).toStrictEqual(expected[i]);
    });
  });

  it('close() writes out every line of a burst, in order, before it resolves (what shutdown relies on)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kw-log-')), 'access.log');
    const log = new AccessLog(file, false); // no wait: the file is open once the constructor returns
    const ids: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const ctx = newContext({ url: '/v1/embeddings', method: 'POST', headers: {} } as IncomingMessage);
      ids.push(ctx.id);
      log.write(ctx, 200, i, undefined);
    }
    await log.close();
    expect(readLines(file).map((l) => l.request_id)).toEqual(ids);
  });

  // The line before the long one goes out alone, on the thread pool, as the long one arrives; close()
  // right after must not write the long one (and the next) ahead of it. The synchronous flush did.
  it('keeps the order when close() comes while a batch is being written, and writes a line longer than one write (64 KB) whole', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kw-log-')), 'access.log');
    const log = new AccessLog(file, true);
    const text = 'words, not base64: '.repeat(12_000); // ~230 KB of request body, logged as sent
    const ids: string[] = [];
    for (const body of [undefined, { messages: [{ role: 'user', content: text }] }, undefined]) {
      const ctx = newContext({ url: '/v1/chat/completions', method: 'POST', headers: {} } as IncomingMessage);
      if (body) ctx.bodyJson = body;
      ids.push(ctx.id);
      log.write(ctx, 200, 1, undefined);
    }
    await log.close();
    const lines = readLines(file);
    expect(lines.map((l) => l.request_id)).toEqual(ids);
    expect(lines[1]!.request_body).toEqual({ messages: [{ role: 'user', content: text }] });
  });

  it('reports a failed write, keeps taking lines, and still closes (a full disk: /dev/full)', async () => {
    const errors: unknown[] = [];
    const log = new AccessLog('/dev/full', false, (err) => errors.push((err as NodeJS.ErrnoException).code));
    const line = () => log.write(newContext({ url: '/v1/embeddings', method: 'POST', headers: {} } as IncomingMessage), 200, 1, undefined);
    for (let i = 0; i < 300; i++) line(); // well over one 32 KB batch: it is written, and fails
    const deadline = Date.now() + 5000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(errors).toContain('ENOSPC');
    expect(line).not.toThrow();
    await log.close(); // the last lines fail too: close() gives up on them instead of hanging
    expect(line).not.toThrow(); // after close, lines are dropped, not thrown
    await expect(log.close()).resolves.toBeUndefined(); // a second close is the same close
  });

  it('lets the process exit after a failed close (pino flushes a live destination at exit, retrying forever)', () => {
    const built = new URL('../../dist/src/', import.meta.url).href;
    const script = `
      const { AccessLog } = await import('${built}logging/accessLog.js');
      const { newContext } = await import('${built}http/requestContext.js');
      const log = new AccessLog('/dev/full', false, () => {});
      for (let i = 0; i < 50; i++) log.write(newContext({ url: '/v1/x', method: 'POST', headers: {} }), 200, 1, undefined);
      await log.close();
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
    expect(r.error).toBeUndefined(); // no timeout
    expect(r.status).toBe(0);
  });

  it('writes the lines it has when the process dies without close() (an uncaught error)', () => {
    const built = new URL('../../dist/src/', import.meta.url).href;
    const file = join(mkdtempSync(join(tmpdir(), 'kw-log-')), 'access.log');
    const script = `
      const { AccessLog } = await import('${built}logging/accessLog.js');
      const { newContext } = await import('${built}http/requestContext.js');
      const log = new AccessLog(${JSON.stringify(file)}, false, () => {});
      for (let i = 0; i < 3; i++) log.write(newContext({ url: '/v1/x' + i, method: 'POST', headers: {} }), 200, 1, undefined);
      setTimeout(() => { throw new Error('crash'); }, 10);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
    expect(r.status).toBe(1); // it did crash
    expect(readLines(file).map((l) => l.path)).toEqual(['/v1/x0', '/v1/x1', '/v1/x2']);
  });
});
