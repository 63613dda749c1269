// Preload for upload-gc.mjs: `node --import ./bench/ballast.mjs` with BALLAST_MB=N keeps about N MB
// of small, long-lived objects in the heap. It gives the bare proxy the old generation Keyward has
// (its modules and state), and nothing else: no code runs on them after start.
const mb = Number(process.env.BALLAST_MB ?? 0);
const kept = [];
// ~64 bytes an object (a header, two fields and a short string each), in arrays of 10,000.
for (let bytes = 0; bytes < mb * 1024 * 1024; bytes += 10_000 * 64) {
  kept.push(Array.from({ length: 10_000 }, (_, i) => ({ i, s: `b${i}` })));
}
globalThis.__benchBallast = kept;
