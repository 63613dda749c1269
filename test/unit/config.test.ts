import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, loadPaths, parseFlags } from '../../src/config/load.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SERVER_JS = join(ROOT, 'dist/src/server.js');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** Writes a config file (an object is JSON-encoded, a string written as is) and returns its path. */
function configFile(content: Record<string, unknown> | string): string {
  const path = join(dir, `config-${++n}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

/** The ConfigError message loadConfig throws (fails the test if it throws none). */
function configProblem(env: Record<string, string | undefined>, argv: string[] = []): string {
  try {
    loadConfig(env, argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('loadConfig accepted the configuration');
}

const FULL_FILE = {
  OPENAI_API_KEY: 'sk-file-key',
  OPENAI_BASE_URL: 'http://file.example.com',
  PORT: 1111,
  HOST: '10.0.0.1',
  KEYS_FILE: '/srv/file/keys.json',
  USAGE_DB: '/srv/file/usage.sqlite',
  ACCESS_LOG: '/srv/file/access.log',
};

describe('loadConfig precedence: flag > environment > config.json > default', () => {
  it('defaults, with only the key given', () => {
    const config = loadConfig({ OPENAI_API_KEY: 'sk-env-key', CONFIG_FILE: configFile({}) }, []);
    expect(config.upstreamKeys).toEqual([{ key: 'sk-env-key' }]);
    expect(config.upstreamBaseUrl.href).toBe('https://api.openai.com/');
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.keysFile).toBe(resolve('keys.json'));
    expect(config.usageDb).toBe(resolve('usage.sqlite'));
    expect(config.accessLog).toBe(resolve('access.log'));
  });

  it('config.json over the defaults', () => {
    const config = loadConfig({ CONFIG_FILE: configFile(FULL_FILE) }, []);
    expect(config).toMatchObject({
      upstreamKeys: [{ key: 'sk-file-key' }],
      port: 1111,
      host: '10.0.0.1',
      keysFile: '/srv/file/keys.json',
      usageDb: '/srv/file/usage.sqlite',
      accessLog: '/srv/file/access.log',
    });
    expect(config.upstreamBaseUrl.href).toBe('http://file.example.com/');
  });

  it('the environment over config.json', () => {
    const env = {
      CONFIG_FILE: configFile(FULL_FILE),
      OPENAI_API_KEY: 'sk-env-key',
      OPENAI_BASE_URL: 'http://env.example.com:9000',
      PORT: '2222',
      HOST: '0.0.0.0',
      KEYS_FILE: '/srv/env/keys.json',
      USAGE_DB: 'env-usage.sqlite',
      ACCESS_LOG: '/srv/env/access.log',
    };
    const config = loadConfig(env, []);
    expect(config).toMatchObject({
      upstreamKeys: [{ key: 'sk-env-key' }],
      port: 2222,
      host: '0.0.0.0',
      keysFile: '/srv/env/keys.json',
      usageDb: resolve('env-usage.sqlite'),
      accessLog: '/srv/env/access.log',
    });
    expect(config.upstreamBaseUrl.href).toBe('http://env.example.com:9000/');
  });

  it('clientStallTimeoutMs: default, config.json, the environment; a bad value is named', () => {
    expect(loadConfig({ OPENAI_API_KEY: 'sk-env-key', CONFIG_FILE: configFile({}) }, []).clientStallTimeoutMs).toBe(600_000);
    const file = configFile({ OPENAI_API_KEY: 'sk-file-key', clientStallTimeoutMs: 120_000 });
    expect(loadConfig({ CONFIG_FILE: file }, []).clientStallTimeoutMs).toBe(120_000);
    expect(loadConfig({ CONFIG_FILE: file, CLIENT_STALL_TIMEOUT_MS: '5000' }, []).clientStallTimeoutMs).toBe(5000);
    expect(() => loadConfig({ CONFIG_FILE: file, CLIENT_STALL_TIMEOUT_MS: 'soon' }, [])).toThrow(/CLIENT_STALL_TIMEOUT_MS/);
    expect(() => loadConfig({ CONFIG_FILE: configFile({ OPENAI_API_KEY: 'k-test-key', clientStallTimeoutMs: 0 }) }, [])).toThrow(/clientStallTimeoutMs/);
  });

  it('an empty environment variable counts as unset', () => {
    const config = loadConfig({ CONFIG_FILE: configFile(FULL_FILE), OPENAI_API_KEY: '', PORT: '', HOST: '' }, []);
    expect(config).toMatchObject({ upstreamKeys: [{ key: 'sk-file-key' }], port: 1111, host: '10.0.0.1' });
  });

  it('flags over the environment, in both --flag value and --flag=value forms', () => {
    const env = { CONFIG_FILE: configFile(FULL_FILE), PORT: '2222', HOST: '0.0.0.0' };
    expect(loadConfig(env, ['--port', '3333', '--host', '::1'])).toMatchObject({ port: 3333, host: '::1' });
    expect(loadConfig(env, ['--port=4444', '--host=localhost'])).toMatchObject({ port: 4444, host: 'localhost' });
  });

  it('--config over CONFIG_FILE', () => {
    const fromEnv = configFile({ OPENAI_API_KEY: 'sk-a-test-key', PORT: 5001 });
    const fromFlag = configFile({ OPENAI_API_KEY: 'sk-b-test-key', PORT: 5002 });
    expect(loadConfig({ CONFIG_FILE: fromEnv }, []).port).toBe(5001);
    expect(loadConfig({ CONFIG_FILE: fromEnv }, ['--config', fromFlag])).toMatchObject({ port: 5002, upstreamKeys: [{ key: 'sk-b-test-key' }] });
    expect(loadConfig({}, [`--config=${fromFlag}`]).port).toBe(5002);
  });

  it('a config file named explicitly must exist', () => {
    const missing = join(dir, 'nope.json');
    expect(configProblem({ OPENAI_API_KEY: 'sk-x-test-key', CONFIG_FILE: missing })).toMatch(/^cannot read .*nope\.json: ENOENT/);
    expect(configProblem({ OPENAI_API_KEY: 'sk-x-test-key' }, ['--config', missing])).toMatch(/^cannot read .*nope\.json/);
  });

  it('parseFlags: a flag without its value is an error; other arguments are ignored', () => {
    expect(() => parseFlags(['--port'])).toThrow(new ConfigError('--port needs a value'));
    expect(parseFlags(['serve', '--verbose', '--host', 'h'])).toEqual({ host: 'h' });
  });
});

describe('loadConfig: the upstream', () => {
  it('keeps a path prefix of OPENAI_BASE_URL (from the environment or the file)', () => {
    const fromEnv = loadConfig(
      { OPENAI_API_KEY: 'sk-x-test-key', OPENAI_BASE_URL: 'https://gw.example.com/openai/v1', CONFIG_FILE: configFile({}) },
      [],
    );
    expect(fromEnv.upstreamBaseUrl.origin).toBe('https://gw.example.com');
    expect(fromEnv.upstreamBaseUrl.pathname).toBe('/openai/v1');
    const fromFile = loadConfig({ CONFIG_FILE: configFile({ OPENAI_API_KEY: 'sk-x-test-key', OPENAI_BASE_URL: 'http://127.0.0.1:4000/proxy/' }) }, []);
    expect(fromFile.upstreamBaseUrl.href).toBe('http://127.0.0.1:4000/proxy/');
  });

  it('a base URL that is not an http(s) URL is refused, naming the variable', () => {
    const file = configFile({ OPENAI_API_KEY: 'sk-x-test-key' });
    expect(configProblem({ CONFIG_FILE: file, OPENAI_BASE_URL: 'api.openai.com' })).toBe(
      'OPENAI_BASE_URL is not a URL (e.g. https://api.openai.com/v1)',
    );
    // A URL that does not parse is not echoed: it may hold credentials.
    expect(configProblem({ CONFIG_FILE: file, OPENAI_BASE_URL: 'https://user:s3cret@ gw.example.com' })).not.toContain('s3cret');
    expect(configProblem({ CONFIG_FILE: file, OPENAI_BASE_URL: 'ftp://files.example.com' })).toBe(
      'OPENAI_BASE_URL must be http or https, got "ftp:"',
    );
    const bad = configFile({ OPENAI_API_KEY: 'sk-x-test-key', OPENAI_BASE_URL: 'ftp://files.example.com' });
    expect(configProblem({ CONFIG_FILE: bad })).toBe(`${bad}: OPENAI_BASE_URL: Invalid URL`);
  });

  it('OPENAI_API_KEY is checked as pool keys are (a stray CR from a Windows file), without printing it', () => {
    const message = configProblem({ CONFIG_FILE: configFile({}), OPENAI_API_KEY: 'sk-proj-secretpart123\r' });
    expect(message).toBe('OPENAI_API_KEY: a key must be printable ASCII without spaces');
    expect(loadConfig({ CONFIG_FILE: configFile({}), OPENAI_API_KEY: 'EMPTY' }, []).upstreamKeys).toEqual([{ key: 'EMPTY' }]); // compatible servers
  });

  it('numbers from the environment are decimal digits; timeouts in the file are bounded as in the environment', () => {
    const file = configFile({ OPENAI_API_KEY: 'sk-x-test-key' });
    expect(configProblem({ CONFIG_FILE: file, PORT: '0x50' })).toBe('PORT must be a whole number from 0 to 65535, got "0x50"');
    expect(configProblem({ CONFIG_FILE: file, UPSTREAM_TIMEOUT_MS: '1e4' })).toMatch(/^UPSTREAM_TIMEOUT_MS must be a whole number/);
    const huge = configFile({ OPENAI_API_KEY: 'sk-x-test-key', clientStallTimeoutMs: 3_000_000_000 });
    expect(configProblem({ CONFIG_FILE: huge })).toMatch(/clientStallTimeoutMs/);
    const longStop = configFile({ OPENAI_API_KEY: 'sk-x-test-key', shutdownTimeoutMs: 3_600_001 });
    expect(configProblem({ CONFIG_FILE: longStop })).toMatch(/shutdownTimeoutMs/);
  });

  it('no upstream key anywhere: one line saying what to set', () => {
    const message = configProblem({ CONFIG_FILE: configFile({ PORT: 9000 }) });
    expect(message).toBe('no upstream key: set OPENAI_API_KEY (or OPENAI_API_KEYS) in the environment or in config.json (see config-example.json)');
    expect(configProblem({ CONFIG_FILE: configFile({}), OPENAI_API_KEY: '' })).toBe(message);
  });

  it('loadPaths needs no upstream key', () => {
    const file = configFile({ KEYS_FILE: '/srv/k.json', USAGE_DB: 'u.sqlite' });
    expect(loadPaths({ CONFIG_FILE: file })).toEqual({ keysFile: '/srv/k.json', usageDb: resolve('u.sqlite') });
    expect(loadPaths({ CONFIG_FILE: file, USAGE_DB: '/srv/env.sqlite' })).toEqual({
      keysFile: '/srv/k.json',
      usageDb: '/srv/env.sqlite',
    });
    expect(loadPaths({ CONFIG_FILE: configFile({}) }, ['--config', file]).keysFile).toBe('/srv/k.json');
  });
});

describe('loadConfig: a bad config.json or value stops start-up with one line', () => {
  it('malformed JSON: file, line, problem; no secret, no line break', () => {
    const secret = 'sk-proj-UNQUOTEDsecret0123456789';
    const path = configFile(`{\n  "PORT": 8080,\n  "OPENAI_API_KEY": ${secret}\n}\n`);
    const message = configProblem({ CONFIG_FILE: path });
    expect(message).toBe(`${path} is not valid JSON: line 3: Unexpected token 's'`);
    expect(message).not.toContain('UNQUOTED');

    const trailing = configFile(`{\n  "OPENAI_API_KEY": "${secret}",\n}\n`);
    expect(configProblem({ CONFIG_FILE: trailing })).toMatch(
      new RegExp(`^${trailing.replace(/[.]/g, '\\.')} is not valid JSON: line 3: Expected double-quoted property name`),
    );
  });

  it('not an object', () => {
    const path = configFile('["OPENAI_API_KEY"]');
    expect(configProblem({ OPENAI_API_KEY: 'sk-x-test-key', CONFIG_FILE: path })).toBe(
      `${path}: Invalid input: expected object, received array`,
    );
  });

  it('an unknown field (a typo) is named', () => {
    const path = configFile({ OPENAI_API_KEY: 'sk-x-test-key', PROT: 8080 });
    expect(configProblem({ CONFIG_FILE: path })).toBe(`${path}: Unrecognized key: "PROT"`);
  });

  it('fields starting with _ are comments and ignored', () => {
    const path = configFile({ _comment: 'copy me', _port_note: 42, _: null, OPENAI_API_KEY: 'sk-x-test-key', PORT: 8181 });
    expect(loadConfig({ CONFIG_FILE: path }, [])).toMatchObject({ upstreamKeys: [{ key: 'sk-x-test-key' }], port: 8181 });
  });

  it('a bad PORT: in the file, the environment or a flag', () => {
    const key = { OPENAI_API_KEY: 'sk-x-test-key' };
    const big = configFile({ ...key, PORT: 70000 });
    expect(configProblem({ CONFIG_FILE: big })).toBe(`${big}: PORT: Too big: expected number to be <=65535`);
    const text = configFile({ ...key, PORT: '8080' });
    expect(configProblem({ CONFIG_FILE: text })).toBe(`${text}: PORT: Invalid input: expected number, received string`);

    const file = configFile(key);
    for (const bad of ['http', '80.5', '-1', '65536']) {
      expect(configProblem({ CONFIG_FILE: file, PORT: bad })).toBe(`PORT must be a whole number from 0 to 65535, got "${bad}"`);
    }
    expect(configProblem({ CONFIG_FILE: file, PORT: '8080' }, ['--port', 'eighty'])).toBe(
      '--port must be a whole number from 0 to 65535, got "eighty"',
    );
    expect(configProblem({ CONFIG_FILE: file }, ['--port'])).toBe('--port needs a value');
  });

  it('a bad LOG_LEVEL is named', () => {
    expect(configProblem({ CONFIG_FILE: configFile({ OPENAI_API_KEY: 'sk-x-test-key' }), LOG_LEVEL: 'loud' })).toMatch(
      /^LOG_LEVEL must be one of fatal, error, .* got "loud"$/,
    );
  });
});

describe('the server process refuses to start', () => {
  const SECRET = 'sk-proj-DoNotPrintMe0123456789abcdef';

  beforeAll(() => {
    if (!existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run \`npm run -s build\` first`);
  });

  /** Runs the built server in a fresh folder with a clean environment (none of this shell's variables). */
  function runServer(files: Record<string, string>, env: Record<string, string> = {}) {
    const cwd = mkdtempSync(join(dir, 'server-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(cwd, name), text);
    const result = spawnSync(process.execPath, [SERVER_JS], {
      cwd,
      env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
      encoding: 'utf8',
      timeout: 15_000,
    });
    return { ...result, cwd };
  }

  /** No run of 6 characters of the secret appears in the output. */
  function expectNoSecret(output: string): void {
    for (let i = 0; i + 6 <= SECRET.length; i++) expect(output).not.toContain(SECRET.slice(i, i + 6));
  }

  it('without an upstream key: exit 1, one line on stderr', () => {
    const r = runServer({});
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'keyward: no upstream key: set OPENAI_API_KEY (or OPENAI_API_KEYS) in the environment or in config.json (see config-example.json)\n',
    );
    expect(r.stdout).toBe('');
    expect(existsSync(join(r.cwd, 'usage.sqlite'))).toBe(false);
  });

  it('with a config.json that is not valid JSON (an unquoted key): one line naming file and line, no secret', () => {
    const r = runServer({ 'config.json': `{\n  "_comment": "mine",\n  "OPENAI_API_KEY": ${SECRET}\n}\n` });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`keyward: ${join(r.cwd, 'config.json')} is not valid JSON: line 3: Unexpected token 's'\n`);
    expectNoSecret(r.stderr + r.stdout);
  });

  it('with a trailing comma after the key: one line, no secret', () => {
    const r = runServer({ 'config.json': `{\n  "OPENAI_API_KEY": "${SECRET}",\n}\n` });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^keyward: \S+config\.json is not valid JSON: line 3: [^\n]+\n$/);
    expectNoSecret(r.stderr + r.stdout);
  });

  it('with an unknown field next to a valid key: names the field, no secret', () => {
    const r = runServer({ 'config.json': JSON.stringify({ OPENAI_API_KEY: SECRET, LOGLEVEL: 'debug' }) });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`keyward: ${join(r.cwd, 'config.json')}: Unrecognized key: "LOGLEVEL"\n`);
    expectNoSecret(r.stderr + r.stdout);
  });

  it('with a bad PORT in the environment: names it, no secret', () => {
    const r = runServer({}, { OPENAI_API_KEY: SECRET, PORT: 'eighty' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('keyward: PORT must be a whole number from 0 to 65535, got "eighty"\n');
    expectNoSecret(r.stderr + r.stdout);
  });
});
