import type { RequestContext } from '../http/context.js';
import type { Pricing } from '../usage/pricing.js';

/** Output reserved for a request that sets no max_tokens / max_output_tokens. */
export const DEFAULT_OUTPUT_RESERVE = 4096;
/** Input tokens counted for each image or audio payload in a JSON body (base64 is not text). */
const MEDIA_TOKENS = 1500;
/** Reserved for a request whose cost cannot be estimated from tokens (audio by the second, …). */
export const FALLBACK_RESERVE_NANO = 10_000_000; // 0.01 USD
/** Reserved for, and charged to, each Realtime session (its tokens are not read yet). */
export const REALTIME_SESSION_RESERVE_NANO = 100_000_000; // 0.10 USD

const BASE64ISH = /^(data:[^,]*;base64,|[A-Za-z0-9+/=_-]{200,}$)/;

/**
 * Tokens of a text, erring high: 3 characters a token (OpenAI's English average is about 4), but
 * one for each CJK character (Chinese, Japanese, Korean: at most about one token each in OpenAI's
 * tokenizers, so at 3 a token they were counted a third of what they cost) and two for each
 * character outside the Basic Multilingual Plane (emoji, rare CJK: UTF-8's four bytes).
 */
export function textTokens(text: string): number {
  // UTF-16 units counted a token each, and not in the 3-a-token rest: a CJK character is one unit
  // and one token, an astral character two units (a surrogate pair) and two tokens.
  let wide = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x2e80) continue; // Latin, Greek, Cyrillic, Arabic, Hebrew, Indic …: the 3-a-token rest
    if (c >= 0xd800 && c <= 0xdbff) {
      wide += 2; // a surrogate pair: one astral character
      i++;
    } else if (c <= 0x9fff || (c >= 0xac00 && c <= 0xd7af) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xff00 && c <= 0xffef)) {
      wide += 1; // CJK radicals to unified ideographs, kana, Hangul syllables, compatibility and full-width forms
    }
  }
  return wide + Math.ceil((text.length - wide) / 3);
}

/**
 * Input tokens, erring high: text as above, each media payload a fixed amount, each number one
 * (embeddings and completions take input as arrays of token ids).
 */
function inputTokens(value: unknown): number {
  if (typeof value === 'string') return BASE64ISH.test(value) ? MEDIA_TOKENS : textTokens(value);
  if (typeof value === 'number') return 1;
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + inputTokens(v), 0);
  if (value && typeof value === 'object') {
    let n = 0;
    for (const key in value) n += inputTokens((value as Record<string, unknown>)[key]) + 1;
    return n;
  }
  return 0;
}

function outputTokens(body: Record<string, unknown>): number {
  const choices = typeof body.n === 'number' && body.n > 1 ? body.n : 1;
  for (const name of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const v = body[name];
    if (typeof v === 'number' && v >= 0) return v * choices;
  }
  return DEFAULT_OUTPUT_RESERVE * choices;
}

export interface Estimate {
  tokens: number;
  costNano: number;
}

/**
 * What a request will probably use, for rate limits and budget reservations, before it is sent.
 * Bodies Keyward did not read (streamed uploads) count their declared length.
 */
export function estimateRequest(ctx: RequestContext, declaredBytes: number, pricing: Pricing): Estimate {
  const body = ctx.bodyJson;
  const endpointHasOutput = ctx.endpoint !== 'embeddings' && ctx.endpoint !== 'moderations';
  let input: number;
  let output: number;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    input = inputTokens(b.messages ?? b.input ?? b.prompt ?? b);
    output = endpointHasOutput ? outputTokens(b) : 0;
  } else {
    input = Math.ceil(declaredBytes / 3);
    output = endpointHasOutput && ctx.method === 'POST' ? DEFAULT_OUTPUT_RESERVE : 0;
  }
  // A Realtime session (a WebSocket GET) is not metered by token yet: it holds a flat reservation,
  // charged when it ends, so that budgets bound the number of sessions.
  if (ctx.path === '/v1/realtime') return { tokens: 0, costNano: REALTIME_SESSION_RESERVE_NANO };
  if (ctx.method !== 'POST') return { tokens: 0, costNano: 0 };
  // Endpoints Keyward does not meter (assistants, threads, fine-tuning jobs, token counts …) are not
  // priced by their body's model: creating an assistant for o1-pro is not an o1-pro request.
  const model = ctx.endpoint === 'other' ? undefined : ctx.requestModel;
  const cost = model ? pricing.costNanoUsd(model, { input_tokens: input, output_tokens: output }) : null;
  return { tokens: input + output, costNano: cost ?? FALLBACK_RESERVE_NANO };
}
