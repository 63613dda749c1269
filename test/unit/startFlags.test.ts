import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
// The node flags of `npm start`, picked out as bench/run.mjs picks them.
const flags = pkg.scripts.start!.split(/\s+/).filter((a) => /^--[\w-]+=\S+$/.test(a));

describe('npm start', () => {
  it('starts the built server with V8 heap flags', () => {
    expect(pkg.scripts.start).toMatch(/^node (--[\w-]+=\S+ )+dist\/src\/server\.js$/);
    expect(flags.length).toBeGreaterThan(0);
  });

  it('passes node flags that this Node accepts (an unknown V8 flag would stop the start)', () => {
    const r = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok');
    expect(r.status).toBe(0);
  });
});
