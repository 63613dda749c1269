// The benchmark's settings, from the environment. Defaults keep a full run under ~4½ minutes;
// BENCH_QUICK=1 shrinks every phase for a ~1 minute smoke run (figures are then only indicative).
const quick = /^(1|true|yes|on)$/i.test(process.env.BENCH_QUICK ?? '');

function num(name, full, quickValue, { min = 0, int = true } = {}) {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? (quick ? quickValue : full) : Number(raw);
  if (!Number.isFinite(value) || value < min || (int && !Number.isInteger(value))) {
    throw new Error(`${name} must be ${int ? 'a whole number' : 'a number'} ≥ ${min}, got "${raw}"`);
  }
  return value;
}

export function loadSettings() {
  return {
    quick,
    /** Seconds of JSON and of SSE load (concurrency CONC) per proxy before anything is measured. */
    warm: num('BENCH_WARM', 5, 1, { int: false }),
    /** Seconds per measured run at concurrency CONC (JSON and SSE), per proxy and round. */
    dur: num('BENCH_DUR', 4, 3, { min: 1, int: false }),
    /** Seconds per measured run at concurrency 1, per proxy and round. */
    lowDur: num('BENCH_LOW_DUR', 3, 2, { min: 1, int: false }),
    /**
     * Interleaved rounds of each test: round 1 bare then Keyward, round 2 Keyward then bare, …
     * Four short rounds rather than two long ones: the VMs here drift by up to 2× within minutes,
     * and shorter alternating runs share more of the drift.
     */
    rounds: num('BENCH_ROUNDS', 4, 1, { min: 1 }),
    conc: num('BENCH_CONC', 50, 50, { min: 1 }),
    /** Content chunks per SSE stream (plus role, finish, usage and [DONE]). */
    chunks: num('BENCH_CHUNKS', 20, 20, { min: 1 }),
    /** Chunk-timing test: delay between upstream chunks, streams per proxy and round, in parallel. */
    chunkDelayMs: num('BENCH_CHUNK_DELAY_MS', 50, 50, { min: 1 }),
    timingStreams: num('BENCH_TIMING_STREAMS', 5, 4, { min: 1 }),
    timingConc: num('BENCH_TIMING_CONC', 5, 4, { min: 1 }),
    /**
     * The chunk-timing test again while a JSON load of this many requests/s runs through the same
     * target (0: skip it). An idle proxy shows only wake-up delays; under load a proxy's own stalls
     * (a garbage collection, a synchronous disk write) hold back chunks of the streams it relays.
     */
    loadedRate: num('BENCH_LOADED_RATE', 3000, 3000),
    /** Large bodies: BIG_N sequential POSTs of BIG_MB each, per proxy (split over the rounds). */
    bigMb: num('BENCH_BIG_MB', 20, 20, { min: 1, int: false }),
    bigN: num('BENCH_BIG_N', 10, 4, { min: 1 }),
    /** Leak check (Keyward only): LEAK_TOTAL requests in a row, RSS after the first LEAK_FIRST and at the end. */
    leakTotal: num('BENCH_LEAK_TOTAL', 200_000, 30_000, { min: 2 }),
    leakFirst: num('BENCH_LEAK_FIRST', 20_000, 3_000, { min: 1 }),
    /**
     * A measured run is "disturbed" when the machine spent more than OTHER_MAX % of a core on
     * anything but the proxy, the mock and the load generator; it is then repeated, RETRIES times at most.
     */
    otherMax: num('BENCH_OTHER_MAX', 25, 25, { int: false }),
    retries: num('BENCH_RETRIES', 2, 1),
    /** At most this many repeats over the whole run, so a busy machine cannot stretch it far. */
    maxRepeats: num('BENCH_MAX_REPEATS', 6, 3),
    /** Pin mock + load generator to CPU 0 and each proxy to CPU 1 (needs taskset and 2 CPUs). */
    pin: num('BENCH_PIN', 1, 1),
    /** Keyward's LOG_LEVEL (its operator log on stdout; access log and metering are always on). */
    logLevel: process.env.BENCH_LOG_LEVEL || 'info',
    /** Keep the temp dir (keys.json, usage.sqlite, access.log, process logs) after the run. */
    keep: /^(1|true|yes|on)$/i.test(process.env.BENCH_KEEP ?? ''),
  };
}

export const TARGETS = {
  jsonRps: 0.8, // Keyward req/s ≥ 0.80× bare, JSON chat at concurrency CONC
  jsonCpu: 1.3, // Keyward CPU µs per request ≤ 1.3× bare
  sseRps: 0.9, // Keyward req/s ≥ 0.90× bare, SSE chat at concurrency CONC
  c1AddedUs: 100, // Keyward p50 ≤ bare p50 + 100 µs at concurrency 1
  chunkDelayMs: 2, // every chunk within 2 ms of leaving the upstream
  bigTime: 1.5, // median 20 MB POST time ≤ 1.5× bare
  bigRss: 1.5, // peak RSS during the big POSTs ≤ 1.5× bare
  leakGrowth: 0.1, // RSS at the end ≤ 1.10× RSS after the first LEAK_FIRST requests
};
