// Why big uploads cost Keyward more than the bare proxy: counts V8's mark-compacts during
// 20 MB POSTs (--trace-gc) for Keyward, the bare proxy, and the bare proxy carrying Keyward's
// heap as ballast (bench/ballast.mjs). Not part of `npm run bench`; about a minute.
//
//   npm run build && node bench/upload-gc.mjs   UPLOAD_GC_N (10) POSTs of UPLOAD_GC_MB (20) MB per
//                                                proxy; UPLOAD_GC_BALLAST_MB (2,8): a bare proxy per size
//
// Each 64 KB read of an upload is a new Buffer: memory outside the heap that V8 counts against
// the old generation's limit until a collection frees it. V8 starts incremental marking (and so a
// mark-compact) on that limit only once the old generation holds more than 8 MB, and the bare
// proxy holds less (about 4 MB). Expected: none for the bare proxy, with 2 MB of ballast or
// without; about one a POST with 8 MB of ballast and for Keyward, whose POSTs are slower alike.
import { mkdtempSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Processes, haveTaskset } from './processes.mjs';
import { percentile } from './stats.mjs';
import { BENCH, SERVER, CLIENT_KEY, CHAT, startFlags, mockEnv, bareEnv, keywardEnv, KEYS_JSON } from './workload.mjs';

const N = Number(process.env.UPLOAD_GC_N ?? 10);
const MB = Number(process.env.UPLOAD_GC_MB ?? 20);
const BALLAST_MB = (process.env.UPLOAD_GC_BALLAST_MB ?? '2,8').split(',').map(Number).filter((mb) => mb > 0);
const pin = os.availableParallelism() >= 2 && haveTaskset();
const workDir = mkdtempSync(path.join(os.tmpdir(), 'keyward-upload-gc-'));
const procs = new Processes({ pin, logDir: workDir });
const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? workDir, NODE_ENV: 'production' };
const auth = { authorization: `Bearer ${CLIENT_KEY}` };
const gcFlags = [...startFlags(), '--trace-gc'];

/** --trace-gc lines written since `offset`: mark-compacts, and the heap after the last collection. */
function gcSince(entry, offset) {
  const lines = readFileSync(entry.logFile, 'utf8').slice(offset).split('\n');
  const markCompacts = lines.filter((l) => l.includes(': Mark-Compact ')).length;
  const after = lines.map((l) => /(?:Scavenge|Mark-Compact) [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(l)?.[1]).filter(Boolean).at(-1);
  return { markCompacts, heapAfterMb: after === undefined ? null : Number(after) };
}

async function measure(name, entry, url) {
  // Warm as the rig does (its JSON and SSE runs come first): the JIT, and Keyward's heap as it is under load.
  await procs.runChild(`${name}-warm`, path.join(BENCH, 'load.mjs'), { url: `${url}/v1/chat/completions`, connections: 50, duration: 5, body: CHAT, headers: auth }, { cpu: 0, timeoutMs: 60_000 });
  const offset = statSync(entry.logFile).size;
  const big = await procs.runChild(`${name}-posts`, path.join(BENCH, 'big-post.mjs'), { url: `${url}/v1/embeddings`, headers: auth, n: N, mb: MB }, { cpu: 0, timeoutMs: 300_000 });
  if (big.ok !== N) throw new Error(`${name}: ${N - big.ok} of ${N} POSTs failed (${big.statuses})`);
  const sorted = [...big.ms].sort((a, b) => a - b);
  return { name, medianMs: percentile(sorted, 50), ms: big.ms, ...gcSince(entry, offset) };
}

let failed = false;
try {
  const mock = procs.startService('mock', process.execPath, [path.join(BENCH, 'mock-upstream.mjs')], { cpu: 0, env: mockEnv(baseEnv, 20) });
  const mockUrl = (await procs.waitForLine(mock, (o) => o.msg === 'mock listening')).url;
  writeFileSync(path.join(workDir, 'keys.json'), KEYS_JSON);
  const targets = [
    ['bare', procs.startService('bare', process.execPath, [...gcFlags, path.join(BENCH, 'bare-proxy.mjs')], { cpu: 1, env: bareEnv(baseEnv, mockUrl) })],
    ...BALLAST_MB.map((mb) => [`bare + ${mb} MB ballast`, procs.startService(`bare-ballast-${mb}`, process.execPath, [...gcFlags, '--import', path.join(BENCH, 'ballast.mjs'), path.join(BENCH, 'bare-proxy.mjs')], { cpu: 1, env: { ...bareEnv(baseEnv, mockUrl), BALLAST_MB: String(mb) } })]),
    ['keyward', procs.startService('keyward', process.execPath, [...gcFlags, SERVER], { cpu: 1, cwd: workDir, env: keywardEnv(baseEnv, workDir, mockUrl, 'info') })],
  ];
  const results = [];
  for (const [name, entry] of targets) {
    const ready = await procs.waitForLine(entry, (o) => o.msg === 'bare proxy listening' || o.msg === 'Keyward is listening');
    results.push(await measure(name, entry, ready.url.replace(/\/v1$/, '')));
  }
  const base = results[0].medianMs;
  console.log(`| proxy | median ms (× bare) | mark-compacts in ${N} POSTs of ${MB} MB | heap after the last GC |`);
  console.log('|---|--:|--:|--:|');
  for (const r of results) console.log(`| ${r.name} | ${r.medianMs.toFixed(1)} (${(r.medianMs / base).toFixed(2)}×) | ${r.markCompacts} | ${r.heapAfterMb ?? '–'} MB |`);
  console.log(`\nEach POST, ms: ${results.map((r) => `${r.name}: ${r.ms.join(' ')}`).join('; ')}`);
} catch (err) {
  failed = true;
  console.error(`upload-gc: ${err.message}\nlogs kept in ${workDir}`);
} finally {
  await procs.stopAll();
}
process.exitCode = failed ? 1 : 0;
