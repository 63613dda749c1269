/**
 * Maps OpenAI response bodies and stream events to usage counts. Pure and defensive: bodies come
 * from upstream (or whatever sits in between), so anything malformed yields nothing, never a throw.
 */
import type { Endpoint } from './endpoint.js';
import type { Extracted, PricedTier, UsageCounts } from './types.js';

type Json = Record<string, unknown>;
type Usage = Partial<UsageCounts>;
/** Reads one `usage` object; undefined when it holds nothing usable. */
type UsageReader = (usage: unknown) => Usage | undefined;
/** Reads one parsed SSE `data:` object; `type` is its `type` field or else the `event:` name. */
type EventReader = (data: Json, type: string | undefined) => Extracted | undefined;

const obj = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
/** The service tier, if it is one priced apart. */
const pricedTier = (v: unknown): PricedTier | undefined => (v === 'priority' || v === 'flex' ? v : undefined);
const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;

/** A UsageCounts field and the path to it inside a `usage` object. */
type Mapping = ReadonlyArray<readonly [keyof UsageCounts, ...string[]]>;

function pick(usage: unknown, mapping: Mapping): Usage | undefined {
  const root = obj(usage);
  if (!root) return undefined;
  // Plain index loops: this runs for every metered answer, and destructuring `[field, ...path]`
  // allocated an array per mapping entry.
  let out: Usage | undefined;
  for (let i = 0; i < mapping.length; i++) {
    const entry = mapping[i]!;
    let v: unknown = root;
    for (let k = 1; k < entry.length && v !== undefined; k++) v = obj(v)?.[entry[k] as string];
    const n = count(v);
    if (n !== undefined) (out ??= {})[entry[0]] = n;
  }
  return out;
}

/** Chat completions, legacy completions and embeddings (`CompletionUsage` and its subsets). */
const CHAT: Mapping = [
  ['input_tokens', 'prompt_tokens'],
  ['output_tokens', 'completion_tokens'],
  ['total_tokens', 'total_tokens'],
  ['cached_input_tokens', 'prompt_tokens_details', 'cached_tokens'],
  ['cache_write_tokens', 'prompt_tokens_details', 'cache_write_tokens'],
  ['input_audio_tokens', 'prompt_tokens_details', 'audio_tokens'],
  ['input_image_tokens', 'prompt_tokens_details', 'image_tokens'],
  ['reasoning_tokens', 'completion_tokens_details', 'reasoning_tokens'],
  ['output_audio_tokens', 'completion_tokens_details', 'audio_tokens'],
];

/** Responses API (`ResponseUsage`). */
const RESPONSES: Mapping = [
  ['input_tokens', 'input_tokens'],
  ['output_tokens', 'output_tokens'],
  ['total_tokens', 'total_tokens'],
  ['cached_input_tokens', 'input_tokens_details', 'cached_tokens'],
  ['cache_write_tokens', 'input_tokens_details', 'cache_write_tokens'],
  ['reasoning_tokens', 'output_tokens_details', 'reasoning_tokens'],
];

/** Images (`ImageGenUsage`, `ImagesUsage`). */
const IMAGES: Mapping = [
  ['input_tokens', 'input_tokens'],
  ['output_tokens', 'output_tokens'],
  ['total_tokens', 'total_tokens'],
  ['input_image_tokens', 'input_tokens_details', 'image_tokens'],
  ['output_image_tokens', 'output_tokens_details', 'image_tokens'],
];

/** Transcriptions with `usage.type: "tokens"`; note the spec's singular `input_token_details`. */
const TRANSCRIPT_TOKENS: Mapping = [
  ['input_tokens', 'input_tokens'],
  ['output_tokens', 'output_tokens'],
  ['total_tokens', 'total_tokens'],
  ['input_audio_tokens', 'input_token_details', 'audio_tokens'],
];

/** whisper-1 (`usage.type: "duration"`): billed per second. */
const TRANSCRIPT_DURATION: Mapping = [['audio_seconds', 'seconds']];

/** Speech stream `speech.audio.done`: text in, audio out. */
const SPEECH: Mapping = [
  ['input_tokens', 'input_tokens'],
  ['output_tokens', 'output_tokens'],
  ['total_tokens', 'total_tokens'],
];

const chatUsage: UsageReader = (u) => pick(u, CHAT);
const responsesUsage: UsageReader = (u) => pick(u, RESPONSES);

const imagesUsage: UsageReader = (u) => {
  const out = pick(u, IMAGES);
  // output_tokens_details is optional (absent from the spec example and the stream event schema):
  // gpt-image models then produce only image tokens.
  if (out && out.output_tokens !== undefined && obj(obj(u)?.output_tokens_details) === undefined)
    out.output_image_tokens = out.output_tokens;
  return out;
};

const transcriptionUsage: UsageReader = (u) =>
  pick(u, obj(u)?.type === 'duration' ? TRANSCRIPT_DURATION : TRANSCRIPT_TOKENS);

const speechUsage: UsageReader = (u) => {
  const out = pick(u, SPEECH);
  // Speech output is all audio, priced at the output-audio rate (gpt-4o-mini-tts).
  if (out?.output_tokens !== undefined) out.output_audio_tokens = out.output_tokens;
  return out;
};

/** Non-streaming bodies: where each endpoint keeps its `usage`. Moderations carry none. */
const JSON_USAGE: Partial<Record<Endpoint, UsageReader>> = {
  'chat.completions': chatUsage,
  completions: chatUsage,
  embeddings: chatUsage,
  responses: responsesUsage,
  // The compacted conversation, a Response with its usage.
  'responses.compact': responsesUsage,
  'images.generations': imagesUsage,
  'images.edits': imagesUsage,
  'images.variations': imagesUsage,
  'audio.transcriptions': transcriptionUsage,
  'audio.translations': transcriptionUsage,
  // Only reached if a speech body is JSON (the done event); normal speech bodies are audio bytes.
  'audio.speech': speechUsage,
};

function result(model: string | undefined, usage: Usage | undefined, serviceTier?: PricedTier): Extracted {
  const out: Extracted = {};
  if (model !== undefined) out.model = model;
  if (usage !== undefined) out.usage = usage;
  if (serviceTier !== undefined) out.serviceTier = serviceTier;
  return out;
}

/** A non-streaming JSON response body. Returns {} when nothing is found. */
export function usageFromJson(endpoint: Endpoint, body: unknown): Extracted {
  if (endpoint === 'models' || endpoint === 'other') return {};
  const b = obj(body);
  if (!b) return {};
  return result(str(b.model), JSON_USAGE[endpoint]?.(b.usage), pricedTier(b.service_tier));
}

/** Chat and legacy completion chunks: the model on every chunk, usage on the last (if asked for). */
const chunkEvent: EventReader = (data) => result(str(data.model), chatUsage(data.usage), pricedTier(data.service_tier));

/** Events that close a Responses API stream; only these carry the final `response.usage`. */
const RESPONSE_FINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

const responseEvent: EventReader = (data, type) => {
  const r = obj(data.response);
  if (!r) return undefined;
  return result(str(r.model), type !== undefined && RESPONSE_FINAL.has(type) ? responsesUsage(r.usage) : undefined, pricedTier(r.service_tier));
};

/** Streams without a model in their events: usage on a single final event type. */
const usageOn =
  (types: readonly string[], reader: UsageReader): EventReader =>
  (data, type) =>
    type !== undefined && types.includes(type) ? result(undefined, reader(data.usage)) : undefined;

const transcriptDone = usageOn(['transcript.text.done'], transcriptionUsage);
const imageDone = usageOn(['image_generation.completed', 'image_edit.completed'], imagesUsage);

const SSE_READERS: Partial<Record<Endpoint, EventReader>> = {
  'chat.completions': chunkEvent,
  completions: chunkEvent,
  responses: responseEvent,
  'audio.transcriptions': transcriptDone,
  'audio.translations': transcriptDone,
  'audio.speech': usageOn(['speech.audio.done'], speechUsage),
  'images.generations': imageDone,
  'images.edits': imageDone,
};

/**
 * One parsed SSE `data:` payload (`[DONE]` and non-JSON are the caller's to skip; they yield
 * undefined here anyway). Returns undefined when the event says nothing about model or usage.
 */
export function usageFromSseEvent(
  endpoint: Endpoint,
  eventName: string | undefined,
  data: unknown,
): Extracted | undefined {
  const d = obj(data);
  const reader = SSE_READERS[endpoint];
  if (!d || !reader) return undefined;
  // The payload's own `type` is authoritative; the `event:` line is optional in several streams.
  const found = reader(d, str(d.type) ?? str(eventName));
  return found && (found.model !== undefined || found.usage !== undefined) ? found : undefined;
}
