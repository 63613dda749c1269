import { z } from 'zod';
import { DefaultsSchema, type PolicyFields } from '../policy/schema.js';
import { UpstreamKeyListSchema, type UpstreamKeyConfig } from '../upstream/poolConfig.js';
import { ModelPriceSchema } from '../usage/pricing.js';

/** config.json as a user writes it. Keys starting with "_" are comments and ignored. */
export const ConfigFileSchema = z
  .object({
    OPENAI_API_KEY: z.string().min(1).optional(),
    /** Several upstream keys to spread requests over (each with optional label, organization, project). */
    upstreamKeys: UpstreamKeyListSchema.optional(),
    OPENAI_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
    PORT: z.number().int().min(0).max(65535).optional(),
    HOST: z.string().min(1).optional(),
    KEYS_FILE: z.string().min(1).optional(),
    USAGE_DB: z.string().min(1).optional(),
    ACCESS_LOG: z.string().min(1).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
    logBodies: z.boolean().optional(),
    corsOrigins: z.union([z.literal('*'), z.array(z.string().min(1))]).optional(),
    // The same bounds as their environment variables (and under setTimeout's 2^31 - 1 ms, past
    // which Node fires a timer at once).
    upstreamTimeoutMs: z.number().int().positive().max(86_400_000).optional(),
    clientStallTimeoutMs: z.number().int().positive().max(86_400_000).optional(),
    shutdownTimeoutMs: z.number().int().nonnegative().max(3_600_000).optional(),
    maxBodyMb: z.number().positive().max(1024).optional(),
    prices: z.record(z.string().min(1), ModelPriceSchema).optional(),
    /** Policy for every key; keys.json entries override it field by field. */
    defaults: DefaultsSchema.optional(),
    /** One shared proxy key named "shared", for the simplest deployment. */
    PROXY_KEY: z.string().min(16, 'PROXY_KEY must be at least 16 characters').optional(),
    /** GET /: public, keyed (any valid proxy key) or off. */
    statusPage: z.enum(['public', 'keyed', 'off']).optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof ConfigFileSchema>;

export interface Config {
  /** The upstream key pool: OPENAI_API_KEYS, else config.json's upstreamKeys, else OPENAI_API_KEY alone. */
  upstreamKeys: UpstreamKeyConfig[];
  /** Upstream origin plus optional path prefix; requests for /v1/... are appended (see upstreamPath). */
  upstreamBaseUrl: URL;
  port: number;
  host: string;
  keysFile: string;
  usageDb: string;
  accessLog: string;
  logLevel: string;
  logBodies: boolean;
  corsOrigins: '*' | string[];
  upstreamTimeoutMs: number;
  /** How long a client's connection may take none of an answer that waits for it before it is cut. */
  clientStallTimeoutMs: number;
  shutdownTimeoutMs: number;
  maxBodyBytes: number;
  prices: Record<string, z.infer<typeof ModelPriceSchema>>;
  defaults: PolicyFields;
  proxyKey: string | undefined;
  statusPage: 'public' | 'keyed' | 'off';
}

export const DEFAULTS = {
  OPENAI_BASE_URL: 'https://api.openai.com',
  PORT: 8080,
  HOST: '127.0.0.1',
  KEYS_FILE: 'keys.json',
  USAGE_DB: 'usage.sqlite',
  ACCESS_LOG: 'access.log',
  LOG_LEVEL: 'info',
  upstreamTimeoutMs: 600_000,
  clientStallTimeoutMs: 600_000,
  shutdownTimeoutMs: 30_000,
  maxBodyMb: 50,
} as const;
