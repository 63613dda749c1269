// Open Realtime sessions are cut when their key stops being valid (src/proxy/sessionKeyWatch.ts).
import type { IncomingMessage } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newContext } from '../../src/http/requestContext.js';
import { KeyRing } from '../../src/keys/keyRing.js';
import type { KeyRecord, KeySource } from '../../src/keys/types.js';
import { DEFAULT_POLICY } from '../../src/policy/policy.js';
import { SessionKeyWatch } from '../../src/proxy/sessionKeyWatch.js';

const NOW = 1_800_000_000_000;

function record(digest: string, extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: digest.slice(0, 12), digest, name: digest, email: `${digest}@example.com`, disabled: false, expiresAt: undefined, source: 'test',
    policy: { ...DEFAULT_POLICY, families: new Set([...DEFAULT_POLICY.families, 'realtime']) },
    ...extra,
  };
}

/** A key source whose records the test replaces, as a keys.json reload does. */
function source(records: KeyRecord[]) {
  let byDigest = new Map(records.map((r) => [r.digest, r]));
  const s: KeySource & { set(rs: KeyRecord[]): void } = {
    name: 'test',
    lookup: (d) => byDigest.get(d),
    list: () => byDigest.values(),
    set: (rs) => void (byDigest = new Map(rs.map((r) => [r.digest, r]))),
  };
  return s;
}

function session(principal: KeyRecord) {
  const ctx = newContext({ url: '/v1/realtime', method: 'GET', headers: {} } as IncomingMessage);
  ctx.principal = principal;
  ctx.cut = vi.fn();
  return ctx;
}

describe('SessionKeyWatch', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('cuts, at the next check, each session whose key was removed, disabled, expired or lost realtime; the rest stay', () => {
    const keys = ['kept', 'removed', 'disabled', 'expired', 'narrowed'].map((d) => record(d));
    const src = source(keys);
    const watch = new SessionKeyWatch(new KeyRing([src]), 1000, () => NOW);
    const sessions = keys.map((k) => session(k));
    for (const s of sessions) watch.add(s);
    vi.advanceTimersByTime(1000);
    expect(sessions.map((s) => (s.cut as ReturnType<typeof vi.fn>).mock.calls.length)).toEqual([0, 0, 0, 0, 0]);
    src.set([
      record('kept'),
      record('disabled', { disabled: true }),
      record('expired', { expiresAt: NOW - 1 }),
      record('narrowed', { policy: DEFAULT_POLICY }),
    ]);
    vi.advanceTimersByTime(1000);
    expect(sessions.map((s) => (s.cut as ReturnType<typeof vi.fn>).mock.calls.length)).toEqual([0, 1, 1, 1, 1]);
    expect(sessions.map((s) => s.error)).toEqual([
      undefined, 'the key was removed', 'the key was disabled', 'the key expired', 'the key may no longer use realtime',
    ]);
    expect(sessions[1]!.outcome).toBe('stream_broken');
    vi.advanceTimersByTime(5000); // each is cut once
    expect(sessions.map((s) => (s.cut as ReturnType<typeof vi.fn>).mock.calls.length)).toEqual([0, 1, 1, 1, 1]);
  });

  it('runs a timer only while sessions are open', () => {
    const watch = new SessionKeyWatch(new KeyRing([source([record('a')])]), 1000, () => NOW);
    expect(vi.getTimerCount()).toBe(0);
    const s = session(record('a'));
    watch.add(s);
    expect(vi.getTimerCount()).toBe(1);
    watch.delete(s);
    expect(vi.getTimerCount()).toBe(0);
  });
});
