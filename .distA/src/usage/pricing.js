import { z } from 'zod';
import prices from './prices.json' with { type: 'json' };
// zod 4 numbers already reject NaN and ±Infinity.
const usd = z.number().nonnegative();
/** Strict so that a typo in config ("cache_input") fails loudly instead of silently pricing at 0. */
export const ModelPriceSchema = z.strictObject({
    input: usd.optional(),
    cached_input: usd.optional(),
    output: usd.optional(),
    input_audio: usd.optional(),
    cached_input_audio: usd.optional(),
    output_audio: usd.optional(),
    input_image: usd.optional(),
    cached_input_image: usd.optional(),
    output_image: usd.optional(),
    per_second: usd.optional(),
    per_character: usd.optional(),
    per_image: usd.optional(),
    mode: z.string().optional(),
});
/** `-2024-07-18` */
const DATE_SUFFIX = /-\d{4}-\d{2}-\d{2}$/;
/** `-0613`, `-0125`: month 01–12 and day 01–31 only, so `-2025` or `-1536` are not taken for dates. */
const MMDD_SUFFIX = /-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$/;
/** Model names come from clients and upstream; bound the memo so odd names cannot grow it forever. */
const MEMO_LIMIT = 4096;
/** Looks up list prices and turns usage counts into integer nano-dollars (USD × 1e9). */
export class Pricing {
    /**
     * Overrides are searched before the table, each through the whole candidate chain, so that an
     * override of `gpt-4o-mini` also prices `gpt-4o-mini-2024-07-18` although the table has that
     * snapshot. An override replaces the whole entry: it never inherits fields from the table.
     */
    layers;
    memo = new Map();
    constructor(table, overrides = {}) {
        this.layers = [layer(overrides), layer(table)];
    }
    /** The bundled litellm-derived table (src/usage/prices.json), with optional overrides. */
    static bundled(overrides) {
        return new Pricing(prices.models, overrides);
    }
    /**
     * Candidates in order: the name; for `ft:<base>:<org>:…` the `ft:<base>` entry; the name with a
     * `-YYYY-MM-DD` or `-MMDD` snapshot suffix removed (gpt-4o-mini-2024-07-18 → gpt-4o-mini when the
     * snapshot has no own entry). Each candidate is tried exact, then case-insensitive; overrides
     * first, then the table.
     */
    resolve(model) {
        if (this.memo.has(model))
            return this.memo.get(model);
        const found = this.lookup(model);
        if (this.memo.size >= MEMO_LIMIT)
            this.memo.clear();
        this.memo.set(model, found);
        return found;
    }
    /**
     * Cost in integer nano-dollars, or null when the model is unknown, no count is present, or a
     * non-zero count has no price (not even its fallback): an unknown cost is better than a wrong 0.
     */
    costNanoUsd(model, u) {
        if (typeof model !== 'string' || model === '')
            return null;
        const resolved = this.resolve(model);
        if (!resolved)
            return null;
        const p = resolved.price;
        const n = (v) => typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
        const present = (v) => typeof v === 'number' && Number.isFinite(v);
        if (!present(u.input_tokens) &&
            !present(u.output_tokens) &&
            !present(u.cached_input_tokens) &&
            !present(u.input_audio_tokens) &&
            !present(u.output_audio_tokens) &&
            !present(u.input_image_tokens) &&
            !present(u.output_image_tokens) &&
            !present(u.audio_seconds) &&
            !present(u.input_characters))
            return null;
        const cached = n(u.cached_input_tokens);
        // The usage has no cached-audio count, so all audio input is priced as uncached.
        const inAudio = n(u.input_audio_tokens);
        const inImage = n(u.input_image_tokens);
        const inText = Math.max(0, n(u.input_tokens) - cached - inAudio - inImage);
        const outAudio = n(u.output_audio_tokens);
        const outImage = n(u.output_image_tokens);
        const outText = Math.max(0, n(u.output_tokens) - outAudio - outImage);
        // [count, price]; token prices are per 1M, unit prices per 1.
        const tokenParts = [
            [inText, p.input],
            [cached, p.cached_input ?? p.input],
            [inAudio, p.input_audio ?? p.input],
            [inImage, p.input_image ?? p.input],
            [outText, p.output],
            [outAudio, p.output_audio ?? p.output],
            [outImage, p.output_image ?? p.output],
        ];
        const unitParts = [
            [n(u.audio_seconds), p.per_second],
            [n(u.input_characters), p.per_character],
        ];
        let perMillion = 0;
        for (const [count, price] of tokenParts) {
            if (count === 0)
                continue;
            if (price === undefined)
                return null;
            perMillion += count * price;
        }
        let perUnit = 0;
        for (const [count, price] of unitParts) {
            if (count === 0)
                continue;
            if (price === undefined)
                return null;
            perUnit += count * price;
        }
        // USD per 1M tokens × 1e3 = nano-USD per token; round once so parts do not accumulate error.
        return Math.round(perMillion * 1e3 + perUnit * 1e9);
    }
    lookup(model) {
        const candidates = [model];
        // Fine-tuned models are named ft:<base>:<org>:<suffix>:<id>; litellm prices them as ft:<base>.
        if (model.startsWith('ft:')) {
            const ft = model.split(':', 2).join(':');
            if (ft !== model)
                candidates.push(ft);
        }
        const base = model.replace(DATE_SUFFIX, '');
        if (base !== model)
            candidates.push(base);
        else {
            const short = model.replace(MMDD_SUFFIX, '');
            if (short !== model)
                candidates.push(short);
        }
        for (const l of this.layers) {
            for (const name of candidates) {
                const hit = find(l, name);
                if (hit)
                    return hit;
            }
        }
        return undefined;
    }
}
function layer(entries) {
    const exact = new Map(Object.entries(entries));
    const lower = new Map();
    for (const name of exact.keys())
        if (!lower.has(name.toLowerCase()))
            lower.set(name.toLowerCase(), name);
    return { exact, lower };
}
function find(l, name) {
    const key = l.exact.has(name) ? name : l.lower.get(name.toLowerCase());
    const price = key === undefined ? undefined : l.exact.get(key);
    return key !== undefined && price ? { name: key, price } : undefined;
}
//# sourceMappingURL=pricing.js.map