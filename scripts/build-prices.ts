/**
 * Builds src/usage/prices.json from litellm's model_prices_and_context_window.json.
 *
 *   npx tsc -p . && node dist/scripts/build-prices.js [path/to/model_prices_and_context_window.json]
 *
 * Keeps only OpenAI's entries and converts per-token prices to USD per 1M tokens so the bundled
 * table (and config overrides, which use the same units) stay readable.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

const DEFAULT_SOURCE = '../shared/data/model_prices_and_context_window.json';
const OUTPUT = 'src/usage/prices.json';
const PROVIDERS = new Set(['openai', 'text-completion-openai']);

/** Our field ← litellm field, for prices litellm gives per token (scaled to per 1M tokens). */
const PER_TOKEN: ReadonlyArray<readonly [string, string]> = [
  ['input', 'input_cost_per_token'],
  ['cached_input', 'cache_read_input_token_cost'],
  ['cache_write_input', 'cache_creation_input_token_cost'],
  ['output', 'output_cost_per_token'],
  ['input_audio', 'input_cost_per_audio_token'],
  ['cached_input_audio', 'cache_read_input_audio_token_cost'],
  ['output_audio', 'output_cost_per_audio_token'],
  ['input_image', 'input_cost_per_image_token'],
  // litellm has no cached-image-token field today; kept so a future one lands here.
  ['cached_input_image', 'cache_read_input_image_token_cost'],
  ['output_image', 'output_cost_per_image_token'],
];

/** Our field ← litellm field, for prices already per unit (second, character). */
const PER_UNIT: ReadonlyArray<readonly [string, string]> = [
  ['per_second', 'input_cost_per_second'],
  ['per_character', 'input_cost_per_character'],
];

/** 12 significant digits removes binary noise such as 1.5e-7 * 1e6 = 0.15000000000000002. */
const clean = (x: number): number => Number(x.toPrecision(12));

const isPrice = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** The token prices of `entry` whose litellm field ends in `suffix` (a tier's, a long context's). */
function tokenPrices(entry: Record<string, unknown>, suffix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [ours, theirs] of PER_TOKEN) {
    const v = entry[theirs + suffix];
    if (isPrice(v)) out[ours] = clean(v * 1e6);
  }
  return out;
}

/** `_above_272k_tokens` → 272000: the input size past which litellm's long-context prices apply. */
const LONG_CONTEXT = /_above_(\d+)k_tokens$/;

function convert(entry: Record<string, unknown>): Record<string, number | string | Record<string, number>> | undefined {
  const out: Record<string, number | string | Record<string, number>> = {};
  Object.assign(out, tokenPrices(entry, ''));
  // Prices of OpenAI's service tiers (the answer's service_tier says which one served it).
  for (const tier of ['priority', 'flex'] as const) {
    const prices = tokenPrices(entry, `_${tier}`);
    if (Object.keys(prices).length) out[tier] = prices;
  }
  const above = Object.keys(entry).map((k) => LONG_CONTEXT.exec(k)?.[1]).find((k) => k !== undefined);
  if (above !== undefined) {
    const prices = tokenPrices(entry, `_above_${above}k_tokens`);
    if (Object.keys(prices).length) out.long_context = { above_input_tokens: Number(above) * 1000, ...prices };
  }
  for (const [ours, theirs] of PER_UNIT) {
    const v = entry[theirs];
    if (isPrice(v)) out[ours] = v;
  }
  // litellm stores the per-image price of dall-e-* and gpt-image-1.5 size/quality keys as
  // input_cost_per_image although it is the price of each generated image.
  const perImage = isPrice(entry.output_cost_per_image)
    ? entry.output_cost_per_image
    : entry.mode === 'image_generation' && isPrice(entry.input_cost_per_image)
      ? entry.input_cost_per_image
      : undefined;
  if (perImage !== undefined) out.per_image = perImage;
  // An entry without any price we can use (sora video, openai/container) is not worth shipping.
  if (Object.keys(out).length === 0) return undefined;
  if (typeof entry.mode === 'string') out.mode = entry.mode;
  return out;
}

function main(): void {
  const root = process.cwd();
  const source = resolve(root, process.argv[2] ?? DEFAULT_SOURCE);
  const raw = readFileSync(source);
  const table = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;

  const models: Record<string, NonNullable<ReturnType<typeof convert>>> = {};
  let openai = 0;
  const skipped: string[] = [];
  for (const name of Object.keys(table).sort()) {
    const entry = table[name];
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as Record<string, unknown>;
    if (typeof e.litellm_provider !== 'string' || !PROVIDERS.has(e.litellm_provider)) continue;
    openai++;
    const price = convert(e);
    if (price) models[name] = price;
    else skipped.push(name);
  }

  const doc = {
    _source: {
      file: relative(root, source).split('\\').join('/'),
      sha256: createHash('sha256').update(raw).digest('hex'),
      generated_by: 'scripts/build-prices.ts',
      note:
        'OpenAI entries of litellm (MIT). Token prices in USD per 1M tokens; per_second, ' +
        'per_character and per_image in USD per unit. Generated: do not edit, override in config.',
    },
    models,
  };
  // One model per line: readable diffs when litellm changes a price.
  const lines = Object.entries(models).map(
    ([name, price], i, all) => `    ${JSON.stringify(name)}: ${JSON.stringify(price)}${i < all.length - 1 ? ',' : ''}`,
  );
  const text =
    '{\n' +
    `  "_source": ${JSON.stringify(doc._source, null, 2).replace(/\n/g, '\n  ')},\n` +
    '  "models": {\n' +
    lines.join('\n') +
    '\n  }\n}\n';
  JSON.parse(text); // guard against a formatting slip above
  writeFileSync(resolve(root, OUTPUT), text);
  console.log(
    `${OUTPUT}: ${Object.keys(models).length} of ${openai} OpenAI entries` +
      (skipped.length ? ` (skipped, no usable price: ${skipped.join(', ')})` : ''),
  );
}

main();
