import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Endpoint } from '../../src/usage/endpoint.js';
import { ModelPriceSchema, Pricing, type ModelPrice } from '../../src/usage/pricing.js';
import prices from '../../src/usage/prices.json' with { type: 'json' };
import { extractFixture } from './openaiFixtures.js';

const pricing = Pricing.bundled();

describe('fixture costs (README "Expected per-request cost")', () => {
  // [fixture, endpoint, model named by the request when the response has none, README key, nano-USD]
  const cases: Array<[string, Endpoint, string | undefined, string, number]> = [
    ['chat-completion.json', 'chat.completions', undefined, 'gpt-4o-mini', 168_300], // 0.0001683
    ['responses.json', 'responses', undefined, 'o4-mini', 2_446_400], // 0.0024464
    ['chat-completions-stream-include-usage.sse', 'chat.completions', undefined, 'gpt-4o-mini', 8_250], // 0.00000825
    ['responses-stream.sse', 'responses', undefined, 'gpt-4.1-mini', 30_800], // 0.0000308
    ['completion-legacy.json', 'completions', undefined, 'gpt-3.5-turbo-instruct', 21_500], // 0.0000215
    ['embeddings.json', 'embeddings', undefined, 'text-embedding-3-small', 300], // 0.0000003
    ['image-generation.json', 'images.generations', 'gpt-image-1', 'gpt-image-1', 42_310_000], // 0.04231
    ['transcription-tokens.json', 'audio.transcriptions', 'gpt-4o-transcribe', 'gpt-4o-transcribe', 695_000], // 0.000695
    ['transcription-duration-verbose.json', 'audio.transcriptions', 'whisper-1', 'whisper-1', 900_000], // 0.0009
  ];

  it.each(cases)('%s costs the README amount', (file, endpoint, requestModel, key, nano) => {
    const found = extractFixture(endpoint, file);
    expect(found.usage).toBeDefined();
    const model = found.model ?? requestModel;
    expect(model).toBeDefined();
    expect(pricing.costNanoUsd(model, found.usage!)).toBe(nano);
    // The README prices by the alias; the snapshot the response names must cost the same.
    expect(pricing.costNanoUsd(key, found.usage!)).toBe(nano);
  });

  it('prices the image stream like the image response', () => {
    expect(pricing.costNanoUsd('gpt-image-1', extractFixture('images.generations', 'image-generation-stream.sse').usage!)).toBe(
      42_310_000,
    );
  });

  it('prices the speech stream output as audio (gpt-4o-mini-tts: 14 × 2.50 + 101 × 12.00 per 1M)', () => {
    expect(pricing.costNanoUsd('gpt-4o-mini-tts', extractFixture('audio.speech', 'speech-stream.sse').usage!)).toBe(1_247_000);
  });

  it('bills nothing for the failed stream (no usage)', () => {
    const found = extractFixture('responses', 'responses-stream-failed.sse');
    expect(found.usage).toBeUndefined();
    expect(pricing.costNanoUsd(found.model, found.usage ?? {})).toBeNull();
  });
});

describe('resolve', () => {
  const family = new Pricing({
    'gpt-4o-mini': { input: 0.15, cached_input: 0.075, output: 0.6 },
    'gpt-4': { input: 30, output: 60 },
    'foo-1536': { input: 1 },
  });

  it('prefers the exact snapshot when the table has it', () => {
    expect(pricing.resolve('gpt-4o-mini-2024-07-18')?.name).toBe('gpt-4o-mini-2024-07-18');
    // gpt-4o-2024-05-13 has its own (higher) price than the gpt-4o alias.
    expect(pricing.resolve('gpt-4o-2024-05-13')?.price.input).toBe(5);
    expect(pricing.resolve('gpt-4o')?.price.input).toBe(2.5);
  });

  it('falls back from a dated snapshot to its alias', () => {
    expect(family.resolve('gpt-4o-mini-2024-07-18')).toEqual({
      name: 'gpt-4o-mini',
      price: { input: 0.15, cached_input: 0.075, output: 0.6 },
    });
    expect(pricing.resolve('gpt-4o-mini-2099-01-01')?.name).toBe('gpt-4o-mini');
  });

  it('strips a -MMDD snapshot suffix', () => {
    expect(family.resolve('gpt-4-0613')?.name).toBe('gpt-4');
    expect(pricing.resolve('gpt-3.5-turbo-0301')?.name).toBe('gpt-3.5-turbo');
  });

  it('does not take any four digits for a date', () => {
    expect(family.resolve('gpt-4-1536')).toBeUndefined();
    expect(family.resolve('foo-1536')?.name).toBe('foo-1536');
    expect(family.resolve('gpt-4o-mini-2024-13-45-x')).toBeUndefined();
  });

  it('matches case-insensitively and reports the table key', () => {
    expect(pricing.resolve('GPT-4o-Mini')?.name).toBe('gpt-4o-mini');
    expect(family.resolve('GPT-4O-MINI-2024-07-18')?.name).toBe('gpt-4o-mini');
  });

  it('maps a fine-tuned model to its ft:<base> entry', () => {
    expect(pricing.resolve('ft:gpt-4o-mini-2024-07-18:acme:support:9x8y7z')?.name).toBe('ft:gpt-4o-mini-2024-07-18');
    expect(pricing.resolve('ft:gpt-4o-mini-2024-07-18:acme:support:9x8y7z')?.price.input).toBe(0.3);
  });

  it('returns undefined for unknown models', () => {
    expect(pricing.resolve('no-such-model')).toBeUndefined();
    expect(pricing.resolve('')).toBeUndefined();
    expect(pricing.resolve('no-such-model-2024-07-18')).toBeUndefined();
    expect(pricing.resolve('gpt-4.1-mini-2025-04-14')).toBeDefined();
  });

  it('memoizes lookups', () => {
    const p = new Pricing({ a: { input: 1 } });
    const first = p.resolve('a-2024-01-01');
    expect(first?.name).toBe('a');
    expect(p.resolve('a-2024-01-01')).toBe(first);
  });
});

describe('costNanoUsd', () => {
  const p = new Pricing({
    text: { input: 2, cached_input: 0.5, output: 8 },
    nocache: { input: 2, output: 8 },
    audio: { input: 2.5, input_audio: 40, output: 10, output_audio: 80 },
    image: { input: 5, input_image: 10, output_image: 40 },
    plain: { input: 3, output: 6 },
    tts: { per_character: 0.000015 },
    seconds: { per_second: 0.0001 },
  });

  it('prices cached input at cached_input, falling back to input', () => {
    // (1000 uncached × 2 + 1000 cached × 0.5 + 100 × 8) USD per 1M = 0.0033 USD
    expect(p.costNanoUsd('text', { input_tokens: 2000, cached_input_tokens: 1000, output_tokens: 100 })).toBe(3_300_000);
    expect(p.costNanoUsd('nocache', { input_tokens: 2000, cached_input_tokens: 1000, output_tokens: 100 })).toBe(4_800_000);
  });

  it('prices audio tokens apart from text tokens', () => {
    const u = { input_tokens: 300, input_audio_tokens: 200, output_tokens: 500, output_audio_tokens: 400 };
    // (100 × 2.5 + 200 × 40 + 100 × 10 + 400 × 80) per 1M = 0.04125 USD
    expect(p.costNanoUsd('audio', u)).toBe(41_250_000);
    // Without audio prices, audio falls back to the text prices: (300 × 3 + 500 × 6) per 1M.
    expect(p.costNanoUsd('plain', u)).toBe(3_900_000);
  });

  it('prices image tokens apart from text tokens', () => {
    const u = { input_tokens: 300, input_image_tokens: 256, output_tokens: 272, output_image_tokens: 272 };
    // (44 × 5 + 256 × 10 + 272 × 40) per 1M = 0.01366 USD
    expect(p.costNanoUsd('image', u)).toBe(13_660_000);
    expect(p.costNanoUsd('plain', u)).toBe((300 * 3 + 272 * 6) * 1000);
  });

  it('never prices a negative part', () => {
    // Inconsistent counts (cached > input, audio > output) must not subtract money.
    expect(p.costNanoUsd('text', { input_tokens: 10, cached_input_tokens: 1000, output_tokens: 0 })).toBe(500_000);
    expect(p.costNanoUsd('audio', { output_tokens: 10, output_audio_tokens: 100 })).toBe(8_000_000);
    expect(p.costNanoUsd('text', { input_tokens: -5, output_tokens: -1 })).toBe(0);
  });

  it('ignores reasoning and total tokens (already inside output and input)', () => {
    expect(p.costNanoUsd('text', { input_tokens: 0, output_tokens: 100, reasoning_tokens: 90, total_tokens: 100 })).toBe(800_000);
  });

  it('prices characters and seconds per unit', () => {
    expect(p.costNanoUsd('tts', { input_characters: 1000 })).toBe(15_000_000);
    expect(pricing.costNanoUsd('tts-1-hd', { input_characters: 1000 })).toBe(30_000_000);
    expect(p.costNanoUsd('seconds', { audio_seconds: 2.5 })).toBe(250_000);
  });

  it('rounds once, to whole nano-dollars', () => {
    // 1 token at 0.0004 USD per 1M = 0.4 nano-USD
    const tiny = new Pricing({ tiny: { input: 0.0004, output: 0.0004 } });
    expect(tiny.costNanoUsd('tiny', { input_tokens: 1 })).toBe(0);
    expect(tiny.costNanoUsd('tiny', { input_tokens: 3 })).toBe(1);
    // Two parts of 0.4 each: rounding per part would give 0.
    expect(tiny.costNanoUsd('tiny', { input_tokens: 1, output_tokens: 1 })).toBe(1);
    expect(pricing.costNanoUsd('gpt-4o-mini', { input_tokens: 1 })).toBe(150);
  });

  it('returns null for unknown or missing models', () => {
    const u = { input_tokens: 10, output_tokens: 10 };
    expect(p.costNanoUsd('nope', u)).toBeNull();
    expect(p.costNanoUsd(null, u)).toBeNull();
    expect(p.costNanoUsd(undefined, u)).toBeNull();
    expect(p.costNanoUsd('', u)).toBeNull();
  });

  it('returns null when no count is present, 0 when counts are zero', () => {
    expect(p.costNanoUsd('text', {})).toBeNull();
    expect(p.costNanoUsd('text', { input_tokens: null, output_tokens: null, reasoning_tokens: 5 })).toBeNull();
    expect(p.costNanoUsd('text', { input_tokens: 0, output_tokens: 0 })).toBe(0);
  });

  it('returns null when a count has no price at all', () => {
    expect(p.costNanoUsd('seconds', { input_tokens: 10 })).toBeNull();
    expect(p.costNanoUsd('text', { audio_seconds: 3 })).toBeNull();
    expect(p.costNanoUsd('image', { output_tokens: 10 })).toBeNull();
  });
});

describe('overrides', () => {
  it('replaces a whole entry, also for snapshots the table lists itself', () => {
    const p = Pricing.bundled({ 'gpt-4o-mini': { input: 1, output: 2 } });
    // cached_input is not inherited from the bundled entry: cached input falls back to input (1).
    const u = { input_tokens: 2000, cached_input_tokens: 1000, output_tokens: 1000 };
    expect(p.costNanoUsd('gpt-4o-mini', u)).toBe(4_000_000);
    expect(p.costNanoUsd('gpt-4o-mini-2024-07-18', u)).toBe(4_000_000);
    expect(p.resolve('gpt-4o-mini-2024-07-18')?.name).toBe('gpt-4o-mini');
    // Other models keep the bundled prices.
    expect(p.costNanoUsd('gpt-4.1-mini', { input_tokens: 37, output_tokens: 10 })).toBe(30_800);
  });

  it('adds models', () => {
    const p = Pricing.bundled({ 'acme-llm': { input: 1.5, output: 3 } });
    expect(p.costNanoUsd('acme-llm', { input_tokens: 1000, output_tokens: 1000 })).toBe(4_500_000);
    expect(pricing.costNanoUsd('acme-llm', { input_tokens: 1000 })).toBeNull();
  });

  it('an override for a snapshot beats the alias in the table', () => {
    const p = new Pricing({ 'gpt-x': { input: 1 } }, { 'gpt-x-2025-01-01': { input: 10 } });
    expect(p.costNanoUsd('gpt-x-2025-01-01', { input_tokens: 1000 })).toBe(10_000_000);
    expect(p.costNanoUsd('gpt-x-2025-02-02', { input_tokens: 1000 })).toBe(1_000_000);
  });
});

describe('ModelPriceSchema', () => {
  it('accepts every field in its unit', () => {
    const price: ModelPrice = {
      input: 0.15,
      cached_input: 0.075,
      output: 0.6,
      input_audio: 40,
      cached_input_audio: 2.5,
      output_audio: 80,
      input_image: 10,
      cached_input_image: 2.5,
      output_image: 40,
      per_second: 0.0001,
      per_character: 0.000015,
      per_image: 0.04,
      mode: 'chat',
    };
    expect(ModelPriceSchema.parse(price)).toEqual(price);
    expect(ModelPriceSchema.parse({})).toEqual({});
  });

  it('rejects unknown fields, negative and non-numeric prices', () => {
    expect(ModelPriceSchema.safeParse({ cache_input: 0.1 }).success).toBe(false);
    expect(ModelPriceSchema.safeParse({ input_cost_per_token: 1.5e-7 }).success).toBe(false);
    expect(ModelPriceSchema.safeParse({ input: -1 }).success).toBe(false);
    expect(ModelPriceSchema.safeParse({ input: '0.15' }).success).toBe(false);
    expect(ModelPriceSchema.safeParse({ output: Number.POSITIVE_INFINITY }).success).toBe(false);
  });

  it('accepts every bundled entry', () => {
    for (const [name, price] of Object.entries(prices.models)) {
      expect(ModelPriceSchema.safeParse(price).success, name).toBe(true);
    }
  });
});

describe('bundled prices.json', () => {
  const sourcePath = resolve(process.cwd(), '../shared/data/model_prices_and_context_window.json');
  const raw = readFileSync(sourcePath);
  const litellm = JSON.parse(raw.toString('utf8')) as Record<string, Record<string, unknown>>;

  it('was generated from the shared litellm file', () => {
    expect(prices._source.sha256).toBe(createHash('sha256').update(raw).digest('hex'));
    expect(prices._source.generated_by).toBe('scripts/build-prices.ts');
  });

  it('holds per-1M token prices equal to litellm per-token prices', () => {
    const fields: Array<[keyof ModelPrice, string]> = [
      ['input', 'input_cost_per_token'],
      ['cached_input', 'cache_read_input_token_cost'],
      ['output', 'output_cost_per_token'],
      ['input_audio', 'input_cost_per_audio_token'],
      ['output_audio', 'output_cost_per_audio_token'],
      ['input_image', 'input_cost_per_image_token'],
      ['output_image', 'output_cost_per_image_token'],
    ];
    const models = prices.models as Record<string, ModelPrice>;
    let checked = 0;
    for (const [name, ours] of Object.entries(models)) {
      const theirs = litellm[name];
      expect(theirs?.litellm_provider, name).toMatch(/^(openai|text-completion-openai)$/);
      for (const [field, src] of fields) {
        const v = theirs?.[src];
        if (typeof v !== 'number') {
          expect(ours[field], `${name}.${field}`).toBeUndefined();
          continue;
        }
        expect(ours[field], `${name}.${field}`).toBeCloseTo(v * 1e6, 9);
        checked++;
      }
      // Tier and long-context prices: litellm's fields with a suffix.
      for (const [variant, suffix] of [['priority', '_priority'], ['flex', '_flex']] as const) {
        for (const [field, src] of fields) {
          const v = theirs?.[src + suffix];
          if (typeof v === 'number') {
            expect(ours[variant]?.[field as 'input'], `${name}.${variant}.${field}`).toBeCloseTo(v * 1e6, 9);
            checked++;
          } else expect(ours[variant]?.[field as 'input'], `${name}.${variant}.${field}`).toBeUndefined();
        }
      }
    }
    expect(checked).toBeGreaterThan(400);
    expect(models['gpt-4o-mini']).toEqual({ input: 0.15, cached_input: 0.075, output: 0.6, priority: { input: 0.25, cached_input: 0.125, output: 1 }, mode: 'chat' });
    expect(models['gpt-5.4']!.long_context).toEqual({ above_input_tokens: 272_000, input: 5, cached_input: 0.5, output: 22.5 });
    expect(models['whisper-1']).toEqual({ per_second: 0.0001, mode: 'audio_transcription' });
    expect(models['dall-e-3']).toEqual({ per_image: 0.04, mode: 'image_generation' });
  });

  it('contains no other provider’s models and sorts names', () => {
    const names = Object.keys(prices.models);
    expect(names).toEqual([...names].sort());
    expect(names).not.toContain('azure/gpt-4o'); // same model, provider azure
    expect(names).toContain('gpt-3.5-turbo-instruct'); // text-completion-openai
  });
});

describe('service tiers and long context (the answer says which tier served it)', () => {
  const pricing = Pricing.bundled();

  it('priority and flex use their own prices; default, scale, auto or none the standard ones', () => {
    const chat = { input_tokens: 2000, cached_input_tokens: 1024, output_tokens: 500 };
    // gpt-4o-mini priority: 976 × $0.25 + 1024 × $0.125 + 500 × $1 per 1M.
    expect(pricing.costNanoUsd('gpt-4o-mini-2024-07-18', chat, 'priority')).toBe(872_000);
    for (const tier of ['default', 'scale', 'auto', undefined, null]) expect(pricing.costNanoUsd('gpt-4o-mini', chat, tier)).toBe(523_200);
    // o4-mini flex: 2000 × $0.55 + 1000 × $0.1375 + 800 × $2.2 per 1M: half the standard price.
    const reasoning = { input_tokens: 3000, cached_input_tokens: 1000, output_tokens: 800 };
    expect(pricing.costNanoUsd('o4-mini', reasoning, 'flex')).toBe(2_997_500);
    expect(pricing.costNanoUsd('o4-mini', reasoning, 'default')).toBe(5_995_000);
  });

  it('a snapshot borrows its alias\'s tier and long-context prices once, when it is resolved', () => {
    const snapshot = pricing.resolve('gpt-4o-mini-2024-07-18')!;
    expect(snapshot.name).toBe('gpt-4o-mini-2024-07-18');
    expect(snapshot.price.priority).toEqual({ input: 0.25, cached_input: 0.125, output: 1 });
    expect(pricing.resolve('gpt-4o-mini-2024-07-18')).toBe(snapshot); // memoised: no new object per request
  });

  it('a tier litellm has no prices for is priced as standard', () => {
    expect(pricing.costNanoUsd('gpt-4o-mini', { input_tokens: 1000, output_tokens: 0 }, 'flex')).toBe(150_000);
  });

  it('past its threshold, a long input is priced at the long-context rates (the whole request)', () => {
    expect(pricing.costNanoUsd('gpt-5.4', { input_tokens: 300_000, output_tokens: 2_000 })).toBe(1_545_000_000);
    expect(pricing.costNanoUsd('gpt-5.4', { input_tokens: 272_000, output_tokens: 2_000 })).toBe(710_000_000);
  });

  it('config overrides may carry tier and long-context prices; a typo in them is refused', () => {
    const over = new Pricing({}, { mine: { input: 1, output: 2, priority: { input: 2, output: 4 }, long_context: { above_input_tokens: 10, input: 3 } } });
    expect(over.costNanoUsd('mine', { input_tokens: 5, output_tokens: 5 }, 'priority')).toBe(30_000); // 5 × $2 + 5 × $4 per 1M
    expect(over.costNanoUsd('mine', { input_tokens: 20, output_tokens: 5 })).toBe(70_000); // 20 × $3 + 5 × $2 per 1M
    expect(ModelPriceSchema.safeParse({ input: 1, priority: { imput: 2 } }).success).toBe(false);
  });
});

describe('cache writes', () => {
  it('input written to the prompt cache is priced at its own rate, the rest of the input at the input rate', () => {
    // gpt-5.6: 2,000 plain × $5 + 2,000 cached × $0.50 + 6,000 written × $6.25 + 100 out × $30 per 1M.
    const u = { input_tokens: 10_000, cached_input_tokens: 2_000, cache_write_tokens: 6_000, output_tokens: 100 };
    expect(Pricing.bundled().costNanoUsd('gpt-5.6', u)).toBe(51_500_000);
    // A model without a write price: written tokens are plain input.
    expect(Pricing.bundled().costNanoUsd('gpt-4o-mini', { input_tokens: 1000, cache_write_tokens: 600, output_tokens: 0 })).toBe(150_000);
  });
});
