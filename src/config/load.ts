import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { HEADER_SAFE_KEY, HEADER_SAFE_KEY_RULE, parseUpstreamKeysEnv, UpstreamKeysError, type UpstreamKeyConfig } from '../upstream/poolConfig.js';
import { jsonErrorLine } from '../util/jsonErrors.js';
import { ConfigFileSchema, DEFAULTS, type Config, type ConfigFile } from './schema.js';

/** A configuration problem: start-up stops with this one line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/** Command-line flags that override everything else (DESIGN: flag > env > config.json > default). */
export function parseFlags(argv: string[]): { config?: string; port?: string; host?: string } {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(config|port|host)(?:=(.*))?$/.exec(argv[i] ?? '');
    if (!m) continue;
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new ConfigError(`--${m[1]} needs a value`);
    out[m[1]!] = value;
  }
  return out;
}

function readConfigFile(path: string, required: boolean): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, ''); // a BOM, as Windows editors write it
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !required) return {};
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid JSON: ${jsonErrorLine(text, err as Error)}`);
  }
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    raw = Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('_')));
  }
  const parsed = ConfigFileSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`${path}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/**
 * OPENAI_API_KEY goes into an Authorization header: printable ASCII without spaces (a stray CR from
 * a Windows file broke every request). Any length: OpenAI-compatible servers take "EMPTY" or "ollama".
 */
function singleKey(key: string): UpstreamKeyConfig {
  // The message names the rule only: a key, or a piece of it, is never printed.
  if (!HEADER_SAFE_KEY.test(key)) throw new ConfigError(`OPENAI_API_KEY: ${HEADER_SAFE_KEY_RULE}`);
  return { key };
}

function intFromEnv(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  // Decimal digits only: Number() would also take "0x50", "1e3" or " 80 ".
  if (!/^-?\d+$/.test(value) || n < min || n > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

const LEVELS = ConfigFileSchema.shape.LOG_LEVEL.unwrap().options as readonly string[];

function logLevelOf(value: string | undefined): string {
  if (value === undefined) return DEFAULTS.LOG_LEVEL;
  if (!LEVELS.includes(value)) throw new ConfigError(`LOG_LEVEL must be one of ${LEVELS.join(', ')}, got "${value}"`);
  return value;
}

function proxyKeyOf(value: string | undefined): string | undefined {
  if (value !== undefined && value.length < 16) throw new ConfigError('PROXY_KEY must be at least 16 characters');
  return value;
}

function statusPageOf(value: string | undefined): 'public' | 'keyed' | 'off' | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'public' || value === 'keyed' || value === 'off') return value;
  throw new ConfigError(`STATUS_PAGE must be public, keyed or off, got "${value}"`);
}

function boolFromEnv(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

interface Settings {
  flags: ReturnType<typeof parseFlags>;
  file: ConfigFile;
  pick(name: keyof ConfigFile & string): string | undefined;
}

/** config.json merged with the environment and flags, before anything is required of it. */
function readSettings(env: Env, argv: string[]): Settings {
  const flags = parseFlags(argv);
  const configPath = flags.config ?? env.CONFIG_FILE;
  const file = readConfigFile(resolve(configPath ?? 'config.json'), configPath !== undefined);
  const pick = (name: keyof ConfigFile & string): string | undefined => {
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const v = file[name];
    return typeof v === 'string' ? v : undefined;
  };
  return { flags, file, pick };
}

/** Where the keys file and the usage database are: all the CLIs need (no upstream key required). */
export function loadPaths(env: Env = process.env, argv: string[] = []): { keysFile: string; usageDb: string } {
  return pathsOf(readSettings(env, argv).pick);
}

function pathsOf(pick: Settings['pick']): { keysFile: string; usageDb: string } {
  return {
    keysFile: resolve(pick('KEYS_FILE') ?? DEFAULTS.KEYS_FILE),
    usageDb: resolve(pick('USAGE_DB') ?? DEFAULTS.USAGE_DB),
  };
}

/**
 * Builds the effective configuration. Precedence: flag > environment > config.json > default.
 * Throws ConfigError with one line naming the problem.
 */
export function loadConfig(env: Env = process.env, argv: string[] = process.argv.slice(2)): Config {
  const { flags, file, pick } = readSettings(env, argv);
  let upstreamKeys: UpstreamKeyConfig[];
  try {
    const single = pick('OPENAI_API_KEY');
    upstreamKeys = env.OPENAI_API_KEYS
      ? parseUpstreamKeysEnv(env.OPENAI_API_KEYS)
      : (file.upstreamKeys ?? (single ? [singleKey(single)] : []));
  } catch (err) {
    if (err instanceof UpstreamKeysError) throw new ConfigError(err.message);
    throw err;
  }
  if (!upstreamKeys.length) {
    throw new ConfigError(
      'no upstream key: set OPENAI_API_KEY (or OPENAI_API_KEYS) in the environment or in config.json (see config-example.json)',
    );
  }

  const baseText = pick('OPENAI_BASE_URL') ?? DEFAULTS.OPENAI_BASE_URL;
  let upstreamBaseUrl: URL;
  try {
    upstreamBaseUrl = new URL(baseText);
  } catch {
    // Not echoed: a mistyped URL may still hold credentials (https://user:secret@…).
    throw new ConfigError('OPENAI_BASE_URL is not a URL (e.g. https://api.openai.com/v1)');
  }
  if (!/^https?:$/.test(upstreamBaseUrl.protocol)) {
    throw new ConfigError(`OPENAI_BASE_URL must be http or https, got "${upstreamBaseUrl.protocol}"`);
  }

  const port =
    intFromEnv('--port', flags.port, 0, 65535) ?? intFromEnv('PORT', env.PORT, 0, 65535) ?? file.PORT ?? DEFAULTS.PORT;
  const corsEnv = env.CORS_ORIGINS;
  const corsOrigins =
    corsEnv !== undefined && corsEnv !== ''
      ? corsEnv.trim() === '*'
        ? '*'
        : corsEnv.split(',').map((s) => s.trim()).filter(Boolean)
      : (file.corsOrigins ?? '*');

  const maxBodyMb = file.maxBodyMb ?? DEFAULTS.maxBodyMb;
  return {
    upstreamKeys,
    upstreamBaseUrl,
    port,
    host: flags.host ?? pick('HOST') ?? DEFAULTS.HOST,
    ...pathsOf(pick),
    accessLog: resolve(pick('ACCESS_LOG') ?? DEFAULTS.ACCESS_LOG),
    logLevel: logLevelOf(pick('LOG_LEVEL')),
    logBodies: boolFromEnv('LOG_BODIES', env.LOG_BODIES) ?? file.logBodies ?? false,
    corsOrigins,
    upstreamTimeoutMs:
      intFromEnv('UPSTREAM_TIMEOUT_MS', env.UPSTREAM_TIMEOUT_MS, 1, 86_400_000) ??
      file.upstreamTimeoutMs ??
      DEFAULTS.upstreamTimeoutMs,
    clientStallTimeoutMs:
      intFromEnv('CLIENT_STALL_TIMEOUT_MS', env.CLIENT_STALL_TIMEOUT_MS, 1, 86_400_000) ??
      file.clientStallTimeoutMs ??
      DEFAULTS.clientStallTimeoutMs,
    shutdownTimeoutMs:
      intFromEnv('SHUTDOWN_TIMEOUT_MS', env.SHUTDOWN_TIMEOUT_MS, 0, 3_600_000) ??
      file.shutdownTimeoutMs ??
      DEFAULTS.shutdownTimeoutMs,
    maxBodyBytes: Math.floor(maxBodyMb * 1024 * 1024),
    prices: file.prices ?? {},
    defaults: file.defaults ?? {},
    proxyKey: proxyKeyOf(pick('PROXY_KEY')),
    statusPage: statusPageOf(env.STATUS_PAGE) ?? file.statusPage ?? 'keyed',
  };
}
