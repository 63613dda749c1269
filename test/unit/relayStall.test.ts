import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newContext } from '../../src/http/requestContext.js';
import { relayResponse } from '../../src/proxy/relay.js';

const STALL_MS = 10_000;

/**
 * A client response whose socket is always full (write() says false) and whose progress the test
 * sets by hand: `socket.writableLength` falls as the client's connection takes what was queued.
 */
function fullResponse() {
  const res = new EventEmitter() as EventEmitter & {
    destroyed: boolean;
    socket: { bytesWritten: number; writableLength: number };
    writeHead(): void;
    write(chunk: Buffer): boolean;
    destroy(): void;
  };
  res.destroyed = false;
  res.socket = { bytesWritten: 0, writableLength: 0 };
  res.writeHead = () => {};
  res.write = (chunk) => {
    res.socket.bytesWritten += chunk.length;
    res.socket.writableLength += chunk.length;
    return false;
  };
  res.destroy = () => {
    res.destroyed = true;
    res.emit('close');
  };
  /** The client's connection takes n of the queued bytes. */
  const take = (n: number) => (res.socket.writableLength -= n);
  return { res, take };
}

/**
 * The same for an answer queued behind a pipelined one: no socket of its own yet; the connection
 * (the request's socket) moves while it takes the answers before it.
 */
function queuedResponse() {
  const { res } = fullResponse();
  const connection = res.socket;
  /** The connection sends and the client takes n bytes of the answers ahead of this one. */
  const take = (n: number) => (connection.bytesWritten += n);
  const queued = res as unknown as { socket: null; req: { socket: typeof connection } };
  queued.socket = null;
  queued.req = { socket: connection };
  res.write = () => false; // Node holds a queued answer's bytes itself until its turn
  return { res, take };
}

function start(make: typeof fullResponse = fullResponse) {
  const ctx = newContext({ url: '/v1/files/file-1/content', method: 'GET', headers: {} } as IncomingMessage);
  const { res, take } = make();
  const valve = { paused: 0, resumed: 0, pause() { this.paused++; }, resume() { this.resumed++; } };
  const sink = relayResponse(ctx, { status: 200, headers: { 'content-type': 'application/octet-stream' } }, res as unknown as ServerResponse, valve, STALL_MS);
  sink.data(Buffer.alloc(64 * 1024));
  return { ctx, res, take, valve, sink };
}

describe('Relay: a client that takes nothing while the upstream is held back', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('is cut after the stall time, with the reason in the row', () => {
    const { ctx, res, valve } = start();
    expect(valve.paused).toBe(1);
    vi.advanceTimersByTime(STALL_MS - 1);
    expect(res.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(res.destroyed).toBe(true);
    expect(ctx.error).toBe('the client took no data for 10 s');
  });

  it('is not cut while its connection keeps taking data, however slowly, and no drain comes', () => {
    const { res, take } = start();
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(STALL_MS - 100);
      take(1000); // a slow reader: the socket never drains, but it moves
      vi.advanceTimersByTime(100);
      expect(res.destroyed).toBe(false);
    }
    vi.advanceTimersByTime(STALL_MS); // then it stops for good
    expect(res.destroyed).toBe(true);
  });

  it('an answer waiting its turn behind a pipelined one: not cut while the connection takes the answers before it', () => {
    const { res, take } = start(queuedResponse);
    for (let i = 0; i < 3; i++) {
      vi.advanceTimersByTime(STALL_MS - 100);
      take(1000); // the connection moves: it is reading the answer ahead of this one
      vi.advanceTimersByTime(100);
      expect(res.destroyed).toBe(false);
    }
    vi.advanceTimersByTime(STALL_MS); // the connection stops taking anything
    expect(res.destroyed).toBe(true);
  });

  it('a drain stops the timer and resumes the upstream; a later pause starts a new one', () => {
    const { res, take, valve, sink } = start();
    vi.advanceTimersByTime(STALL_MS / 2);
    take(64 * 1024);
    res.emit('drain');
    expect(valve.resumed).toBe(1);
    vi.advanceTimersByTime(STALL_MS * 3);
    expect(res.destroyed).toBe(false);
    sink.data(Buffer.alloc(1024));
    expect(valve.paused).toBe(2);
    vi.advanceTimersByTime(STALL_MS - 1); // the new timer counts from this pause
    expect(res.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(res.destroyed).toBe(true);
  });

  it('a client that leaves clears the timer (nothing keeps the request alive)', () => {
    const { res } = start();
    expect(vi.getTimerCount()).toBe(1);
    res.emit('close');
    expect(vi.getTimerCount()).toBe(0);
    expect(res.listenerCount('close')).toBe(0);
  });
});
