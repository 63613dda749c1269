/**
 * Token and unit counts of one request, as the meter stores them. Every field is null when the
 * response did not say (never guessed). Totals include their parts: input_tokens includes cached,
 * audio and image input tokens; output_tokens includes reasoning, audio and image output tokens.
 */
export interface UsageCounts {
  input_tokens: number | null;
  cached_input_tokens: number | null;
  /** Input tokens written to the prompt cache (part of input_tokens), priced apart where a model says so. */
  cache_write_tokens: number | null;
  output_tokens: number | null;
  reasoning_tokens: number | null;
  total_tokens: number | null;
  input_audio_tokens: number | null;
  output_audio_tokens: number | null;
  input_image_tokens: number | null;
  output_image_tokens: number | null;
  /** Billed audio duration (whisper-1 and other per-second models). */
  audio_seconds: number | null;
  /** Billed input characters (tts-1, tts-1-hd). */
  input_characters: number | null;
}

export const emptyUsage = (): UsageCounts => ({
  input_tokens: null,
  cached_input_tokens: null,
  cache_write_tokens: null,
  output_tokens: null,
  reasoning_tokens: null,
  total_tokens: null,
  input_audio_tokens: null,
  output_audio_tokens: null,
  input_image_tokens: null,
  output_image_tokens: null,
  audio_seconds: null,
  input_characters: null,
});

/** OpenAI's service tiers with prices of their own; any other ("default", "auto", "scale") is standard. */
export type PricedTier = 'priority' | 'flex';

/** What an extractor found in a response body or in one stream event. */
export interface Extracted {
  usage?: Partial<UsageCounts>;
  /** The model the upstream says served the request (often a dated snapshot). */
  model?: string;
  /** "priority" or "flex" when that service tier served it (their prices differ); else undefined. */
  serviceTier?: PricedTier;
}
