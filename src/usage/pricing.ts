import { z } from 'zod';
import prices from './prices.json' with { type: 'json' };
import type { UsageCounts } from './types.js';

/** Token prices, USD per 1M tokens. */
export interface TokenPrices {
  input?: number;
  cached_input?: number;
  /** Input written to the prompt cache. */
  cache_write_input?: number;
  output?: number;
  input_audio?: number;
  cached_input_audio?: number;
  output_audio?: number;
  input_image?: number;
  cached_input_image?: number;
  output_image?: number;
}

/**
 * List prices of one model. Token prices are USD per 1M tokens; per_second, per_character and
 * per_image are USD per unit. The same shape and units are used by config overrides. `priority`
 * and `flex` replace the token prices they name for a request that tier served; `long_context`
 * does for a request whose input is over `above_input_tokens`.
 */
export interface ModelPrice extends TokenPrices {
  priority?: TokenPrices;
  flex?: TokenPrices;
  long_context?: TokenPrices & { above_input_tokens: number };
  per_second?: number;
  per_character?: number;
  /** Per generated image (dall-e-*); informational, no usage count carries an image count. */
  per_image?: number;
  mode?: string;
}

// zod 4 numbers already reject NaN and ±Infinity.
const usd = z.number().nonnegative();

const TOKEN_PRICE_FIELDS = {
  input: usd.optional(),
  cached_input: usd.optional(),
  cache_write_input: usd.optional(),
  output: usd.optional(),
  input_audio: usd.optional(),
  cached_input_audio: usd.optional(),
  output_audio: usd.optional(),
  input_image: usd.optional(),
  cached_input_image: usd.optional(),
  output_image: usd.optional(),
};

/** Strict so that a typo in config ("cache_input") fails loudly instead of silently pricing at 0. */
export const ModelPriceSchema = z.strictObject({
  ...TOKEN_PRICE_FIELDS,
  priority: z.strictObject(TOKEN_PRICE_FIELDS).optional(),
  flex: z.strictObject(TOKEN_PRICE_FIELDS).optional(),
  long_context: z.strictObject({ ...TOKEN_PRICE_FIELDS, above_input_tokens: z.number().int().positive() }).optional(),
  per_second: usd.optional(),
  per_character: usd.optional(),
  per_image: usd.optional(),
  mode: z.string().optional(),
}) satisfies z.ZodType<ModelPrice>;

export interface ResolvedPrice {
  /** The table key that matched (alias or snapshot). */
  name: string;
  price: ModelPrice;
}

/** `-2024-07-18` */
const DATE_SUFFIX = /-\d{4}-\d{2}-\d{2}$/;
/** `-0613`, `-0125`: month 01–12 and day 01–31 only, so `-2025` or `-1536` are not taken for dates. */
const MMDD_SUFFIX = /-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$/;
/** Model names come from clients and upstream; bound the memo so odd names cannot grow it forever. */
const MEMO_LIMIT = 4096;

/** A count as a number to price: a positive finite number, else 0. */
const n = (v: number | null | undefined): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
const present = (v: number | null | undefined): boolean => typeof v === 'number' && Number.isFinite(v);
/** count × price; 0 for a zero count whatever the price; NaN for a count with no price. */
const part = (count: number, price: number | undefined): number => (count === 0 ? 0 : price === undefined ? NaN : count * price);

/**
 * The prices that apply to one request: the tier's that served it (litellm has none for a model
 * without that tier: its standard prices stand), else the long-context ones past their threshold.
 */
function pricesFor(p: ModelPrice, u: Partial<UsageCounts>, tier: string | null | undefined): ModelPrice {
  const tiered = tier === 'priority' ? p.priority : tier === 'flex' ? p.flex : undefined;
  if (tiered) return merged(p, tiered);
  if (p.long_context && n(u.input_tokens) > p.long_context.above_input_tokens) return merged(p, p.long_context);
  return p;
}

/** The standard prices with a variant's over them, built once per pair (not on every request). */
const mergedMemo = new WeakMap<ModelPrice, WeakMap<TokenPrices, ModelPrice>>();
function merged(base: ModelPrice, variant: TokenPrices): ModelPrice {
  let byVariant = mergedMemo.get(base);
  if (!byVariant) mergedMemo.set(base, (byVariant = new WeakMap()));
  let out = byVariant.get(variant);
  if (!out) byVariant.set(variant, (out = { ...base, ...variant }));
  return out;
}

/** Looks up list prices and turns usage counts into integer nano-dollars (USD × 1e9). */
export class Pricing {
  /**
   * Overrides are searched before the table, each through the whole candidate chain, so that an
   * override of `gpt-4o-mini` also prices `gpt-4o-mini-2024-07-18` although the table has that
   * snapshot. An override replaces the whole entry: it never inherits fields from the table.
   */
  private readonly layers: ReadonlyArray<Layer>;
  private readonly memo = new Map<string, ResolvedPrice | undefined>();

  constructor(table: Record<string, ModelPrice>, overrides: Record<string, ModelPrice> = {}) {
    this.layers = [layer(overrides), layer(table)];
  }

  /** The bundled litellm-derived table (src/usage/prices.json), with optional overrides. */
  static bundled(overrides?: Record<string, ModelPrice>): Pricing {
    return new Pricing(prices.models as Record<string, ModelPrice>, overrides);
  }

  /**
   * Candidates in order: the name; for `ft:<base>:<org>:…` the `ft:<base>` entry; the name with a
   * `-YYYY-MM-DD` or `-MMDD` snapshot suffix removed (gpt-4o-mini-2024-07-18 → gpt-4o-mini when the
   * snapshot has no own entry). Each candidate is tried exact, then case-insensitive; overrides
   * first, then the table.
   */
  resolve(model: string): ResolvedPrice | undefined {
    if (this.memo.has(model)) return this.memo.get(model);
    const hit = this.lookup(model);
    const found = hit && { name: hit.name, price: this.withVariants(model, hit.price) };
    if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
    this.memo.set(model, found);
    return found;
  }

  /**
   * Cost in integer nano-dollars, or null when the model is unknown, no count is present, or a
   * non-zero count has no price (not even its fallback): an unknown cost is better than a wrong 0.
   */
  costNanoUsd(model: string | null | undefined, u: Partial<UsageCounts>, tier?: string | null): number | null {
    if (typeof model !== 'string' || model === '') return null;
    const resolved = this.resolve(model);
    if (!resolved) return null;
    const p = pricesFor(resolved.price, u, tier);

    if (
      !present(u.input_tokens) &&
      !present(u.output_tokens) &&
      !present(u.cached_input_tokens) &&
      !present(u.cache_write_tokens) &&
      !present(u.input_audio_tokens) &&
      !present(u.output_audio_tokens) &&
      !present(u.input_image_tokens) &&
      !present(u.output_image_tokens) &&
      !present(u.audio_seconds) &&
      !present(u.input_characters)
    )
      return null;

    const cached = n(u.cached_input_tokens);
    const cacheWrite = n(u.cache_write_tokens);
    // The usage has no cached-audio count, so all audio input is priced as uncached.
    const inAudio = n(u.input_audio_tokens);
    const inImage = n(u.input_image_tokens);
    const inText = Math.max(0, n(u.input_tokens) - cached - cacheWrite - inAudio - inImage);
    const outAudio = n(u.output_audio_tokens);
    const outImage = n(u.output_image_tokens);
    const outText = Math.max(0, n(u.output_tokens) - outAudio - outImage);

    // Token prices are per 1M, unit prices per 1. A non-zero count without a price makes the cost
    // unknown (NaN here, null below).
    const perMillion =
      part(inText, p.input) +
      part(cached, p.cached_input ?? p.input) +
      part(cacheWrite, p.cache_write_input ?? p.input) +
      part(inAudio, p.input_audio ?? p.input) +
      part(inImage, p.input_image ?? p.input) +
      part(outText, p.output) +
      part(outAudio, p.output_audio ?? p.output) +
      part(outImage, p.output_image ?? p.output);
    const perUnit = part(n(u.audio_seconds), p.per_second) + part(n(u.input_characters), p.per_character);
    if (Number.isNaN(perMillion) || Number.isNaN(perUnit)) return null;
    // USD per 1M tokens × 1e3 = nano-USD per token; round once so parts do not accumulate error.
    return Math.round(perMillion * 1e3 + perUnit * 1e9);
  }

  /**
   * litellm gives tier and long-context prices on the alias (gpt-4o-mini) but often not on its
   * snapshots (gpt-4o-mini-2024-07-18): a snapshot without them borrows the alias's. Once per
   * model name (resolve's memo keeps the result).
   */
  private withVariants(model: string, price: ModelPrice): ModelPrice {
    if (price.priority && price.flex && price.long_context) return price;
    const base = model.replace(DATE_SUFFIX, '').replace(MMDD_SUFFIX, '');
    if (base === model) return price;
    const alias = this.lookup(base)?.price;
    if (!alias || (!alias.priority && !alias.flex && !alias.long_context)) return price;
    return { ...price, priority: price.priority ?? alias.priority, flex: price.flex ?? alias.flex, long_context: price.long_context ?? alias.long_context };
  }

  private lookup(model: string): ResolvedPrice | undefined {
    const candidates = [model];
    // Fine-tuned models are named ft:<base>:<org>:<suffix>:<id>; litellm prices them as ft:<base>.
    if (model.startsWith('ft:')) {
      const ft = model.split(':', 2).join(':');
      if (ft !== model) candidates.push(ft);
    }
    const base = model.replace(DATE_SUFFIX, '');
    if (base !== model) candidates.push(base);
    else {
      const short = model.replace(MMDD_SUFFIX, '');
      if (short !== model) candidates.push(short);
    }
    for (const l of this.layers) {
      for (const name of candidates) {
        const hit = find(l, name);
        if (hit) return hit;
      }
    }
    return undefined;
  }
}

interface Layer {
  exact: Map<string, ModelPrice>;
  /** lower-cased name → table key */
  lower: Map<string, string>;
}

function layer(entries: Record<string, ModelPrice>): Layer {
  const exact = new Map(Object.entries(entries));
  const lower = new Map<string, string>();
  for (const name of exact.keys()) if (!lower.has(name.toLowerCase())) lower.set(name.toLowerCase(), name);
  return { exact, lower };
}

function find(l: Layer, name: string): ResolvedPrice | undefined {
  const key = l.exact.has(name) ? name : l.lower.get(name.toLowerCase());
  const price = key === undefined ? undefined : l.exact.get(key);
  return key !== undefined && price ? { name: key, price } : undefined;
}
