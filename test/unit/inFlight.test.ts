import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { InFlight } from '../../src/http/inFlight.js';
import { newContext } from '../../src/http/requestContext.js';

const ctx = () => newContext({ url: '/v1/chat/completions', method: 'POST', headers: {} } as IncomingMessage);

describe('InFlight', () => {
  it('holds each request until it ends, whatever the order they end in', () => {
    const list = new InFlight();
    const all = Array.from({ length: 50 }, ctx);
    all.forEach((c) => list.add(c));
    expect(list.size).toBe(50);
    // End them in a scrambled order: every survivor must still be listed exactly once.
    const order = all.map((c, i) => [c, (i * 37) % 50] as const).sort((a, b) => a[1] - b[1]).map(([c]) => c);
    for (let n = 0; n < order.length; n++) {
      list.delete(order[n]!);
      list.delete(order[n]!); // a second delete changes nothing
      const left = order.slice(n + 1);
      expect(list.size).toBe(left.length);
      expect(new Set(list.values())).toEqual(new Set(left));
    }
  });

  it('ignores a request it does not hold, and values() is a copy a stop can go through while requests end', () => {
    const list = new InFlight();
    const [a, b, c] = [ctx(), ctx(), ctx()];
    list.add(a);
    list.add(b);
    list.delete(c);
    expect(list.values()).toEqual([a, b]);
    const seen = [];
    for (const x of list.values()) {
      seen.push(x);
      list.delete(x);
    }
    expect(seen).toEqual([a, b]);
    expect(list.size).toBe(0);
    list.add(c);
    expect(list.values()).toEqual([c]);
  });
});
