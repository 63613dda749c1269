// Searched as Buffers: a string needle is converted on every call (~70 ns a search, measured).
/** The raw key `"usage"` (the SSE tap searches for it too). */
export const USAGE_KEY = Buffer.from('"usage"');
const MODEL_KEY = Buffer.from('"model"');
const TIER_KEY = Buffer.from('"service_tier"');

/**
 * The `model` and `usage` of an OpenAI JSON answer (and that its tier is not one priced apart),
 * read from its bytes without parsing the whole body: a chat answer is small, but an embeddings
 * list or a base64 image can be megabytes, and only two fields are needed. Inside JSON strings a quote is always escaped, so the raw bytes `"usage"`
 * and `"model"` can only be keys. `usage` is the last such key (OpenAI puts the top-level one after
 * the content); `model` the first. Returns undefined when the shape is not as expected (the caller
 * then parses the whole body).
 */
export function modelAndUsage(bytes: Buffer): { model?: string; usage?: unknown } | undefined {
  const out: { model?: string; usage?: unknown } = {};
  const u = bytes.lastIndexOf(USAGE_KEY);
  if (u !== -1) {
    const start = valueStart(bytes, u + 7);
    if (start === -1) return undefined;
    if (bytes[start] === 0x7b /* { */) {
      const end = objectEnd(bytes, start);
      if (end === -1) return undefined;
      try {
        out.usage = JSON.parse(bytes.toString('utf8', start, end));
      } catch {
        return undefined;
      }
    } else if (bytes[start] !== 0x6e /* null */) return undefined;
  }
  // The tier that served the request, priced apart when "priority" or "flex". A key of the
  // client's own metadata may be named service_tier too, and a scan cannot tell which object a key
  // is in: a body that names a priced tier anywhere is parsed whole instead (the parse reads the
  // answer's own). Any other value, wherever it is, means standard prices.
  for (let t = bytes.indexOf(TIER_KEY); t !== -1; t = bytes.indexOf(TIER_KEY, t + TIER_KEY.length)) {
    const start = valueStart(bytes, t + TIER_KEY.length);
    if (start === -1) return undefined;
    const first = bytes[start + 1];
    if (bytes[start] === 0x22 && (first === 0x70 /* p */ || first === 0x66 /* f */)) return undefined;
  }
  const m = bytes.indexOf(MODEL_KEY);
  if (m !== -1) {
    const start = valueStart(bytes, m + 7);
    if (start === -1 || bytes[start] !== 0x22 /* " */) return undefined;
    const end = stringEnd(bytes, start);
    if (end === -1) return undefined;
    try {
      out.model = JSON.parse(bytes.toString('utf8', start, end)) as string;
    } catch {
      return undefined;
    }
  }
  return out;
}

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** After a key: skip spaces, the colon and spaces; the index of the value's first byte, or -1. */
export function valueStart(b: Buffer, i: number): number {
  while (isSpace(b[i])) i++;
  if (b[i] !== 0x3a /* : */) return -1;
  i++;
  while (isSpace(b[i])) i++;
  return i < b.length ? i : -1;
}

/** Index just past the string that starts at `i` (a quote), or -1. */
function stringEnd(b: Buffer, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    if (b[j] === 0x5c /* \ */) j++;
    else if (b[j] === 0x22) return j + 1;
  }
  return -1;
}

/** Index just past the object that starts at `i` (a brace), or -1. */
function objectEnd(b: Buffer, i: number): number {
  let depth = 0;
  for (let j = i; j < b.length; j++) {
    const c = b[j];
    if (c === 0x22) {
      j = stringEnd(b, j) - 1;
      if (j < 0) return -1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return j + 1;
    }
  }
  return -1;
}

/**
 * How many times `name` is a key of the outermost object. JSON.parse keeps the last of duplicate
 * keys while another parser may keep the first, so a policy check needs to know there are two.
 */
export function topLevelKeyCount(b: Buffer, name: string): number {
  const key = Buffer.from(JSON.stringify(name));
  let depth = 0;
  let count = 0;
  for (let j = 0; j < b.length; j++) {
    const c = b[j];
    if (c === 0x22) {
      const end = stringEnd(b, j);
      if (end === -1) return count;
      if (depth === 1) {
        const raw = b.subarray(j, end);
        const isKey = valueStart(b, end) !== -1;
        // A key with escapes is compared decoded (so "mod\u0065l" counts as "model").
        if (isKey && (raw.equals(key) || (raw.includes(0x5c) && safeParse(raw) === name))) count++;
      }
      j = end - 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return count;
}

function safeParse(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}
