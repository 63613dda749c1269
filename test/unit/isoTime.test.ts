import { describe, expect, it } from 'vitest';
import { isoTime } from '../../src/util/isoTime.js';

describe('isoTime', () => {
  it('is Date#toISOString for whole milliseconds, across seconds, days and years', () => {
    const samples = [0, 1, 9, 10, 99, 100, 999, 1000, 1_795_568_523_004, 1_795_568_523_999, 1_795_568_524_000, Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1)];
    for (let i = 0; i < 2000; i++) samples.push(Math.floor(Math.random() * 4e12));
    for (const ms of samples) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    expect(isoTime(1000.5)).toBe(new Date(1000.5).toISOString());
  });
});
