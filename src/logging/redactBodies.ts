/** A base64 payload is kept as its first 16 characters and its length, never whole. */
const KEEP = 16;
/** Deeper than this, a body's structure is not copied into the log (and cannot overflow the stack). */
const MAX_DEPTH = 64;
const DATA_URL_WHOLE = /^data:[^,]*;base64,/i;
const LONG_BASE64 = /^[A-Za-z0-9+/_-]{64,}={0,2}$/;
const B64_KEYS = new Set(['b64_json', 'b64', 'partial_image_b64', 'audio', 'data', 'delta']);
/**
 * Payloads inside a longer text: a data URL (any parameters) and a run of 100 or more base64
 * characters, which may be wrapped in lines (real ones, or `\n` escapes in a string that holds
 * JSON, such as tool-call arguments). Text has spaces and punctuation; such runs are encodings.
 */
// Bounded, and without ':' in the media type and parameters, so that a text of many "data:" is
// scanned once (an unbounded run over ':' and ';' made it quadratic: 200 KB took 8.7 s).
const DATA_URL_IN_TEXT = /data:[^,;:\s"'<>]{0,100}(?:;[^,;:\s"'<>]{0,100}){0,8};base64,(?:[A-Za-z0-9+/=_-]|\r?\n|\\(?:r\\)?n)*/gi;
const BASE64_RUN = /[A-Za-z0-9+/_-](?:[A-Za-z0-9+/=_-]|\r?\n|\\(?:r\\)?n){99,}/g;
/** Encoded bytes mix all three; a rule of dashes, numbers one per line or a long name do not. */
const looksEncoded = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

function shorten(s: string): string {
  return `${s.slice(0, KEEP)}…[base64, ${s.length} chars]`;
}

function redactString(value: string, key: string | undefined): string {
  if (DATA_URL_WHOLE.test(value)) return shorten(value);
  if (key === 'b64_json' && value.length > KEEP) return shorten(value);
  if (LONG_BASE64.test(value) && (B64_KEYS.has(key ?? '') || looksEncoded(value))) return shorten(value);
  if (value.length < 100) return value;
  return value.replace(DATA_URL_IN_TEXT, shorten).replace(BASE64_RUN, (run) => (looksEncoded(run) ? shorten(run) : run));
}

/**
 * A copy of a JSON body fit for a log: every data URL, every `b64_json` and every long base64 string
 * (audio, image, embedding payloads), alone or inside a text, is cut to its first 16 characters
 * plus its length. Structure nested deeper than 64 levels is replaced by a note.
 */
export function redactBase64(value: unknown, key?: string, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value, key);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[nested too deeply to log]';
  if (Array.isArray(value)) return value.map((v) => redactBase64(v, undefined, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactBase64(v, k, depth + 1);
  return out;
}
