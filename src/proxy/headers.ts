import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { CLIENT_CREDENTIAL_HEADERS } from '../auth/credentials.js';

/** Headers as undici gives them: lower-case names; a repeated header is an array. */
export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** RFC 9110 §7.6.1 connection-specific headers: they describe one hop and are never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Never removed because a Connection header names them: they frame or route the message. */
const FRAMING = new Set(['close', 'keep-alive', 'content-length', 'transfer-encoding', 'host', 'content-type']);

const NONE: string[] = [];

function connectionListed(headers: UpstreamHeaders): string[] {
  const value = headers.connection;
  // The usual values name no header: skip the split on every request.
  if (value === undefined || value === 'keep-alive' || value === 'close') return NONE;
  return String(value)
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s && !FRAMING.has(s));
}

/** Codings Keyward can read on its side (see CompressedTap); others are not asked of the upstream. */
const READABLE_CODINGS = new Set(['gzip', 'x-gzip', 'deflate', 'br', 'identity']);

/** The client's Accept-Encoding, keeping only codings the tap can decode (else usage would be lost). */
export function readableAcceptEncoding(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const kept = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => READABLE_CODINGS.has(s.split(';')[0]!.trim().toLowerCase()));
  return kept.length ? kept.join(', ') : 'identity';
}

/**
 * Never forwarded: hop-by-hop headers, the client's credentials, Expect (Node answers it) and Host
 * (the upstream's own is sent). undici refuses several of these outright.
 */
const NOT_FORWARDED = new Set<string>([...HOP_BY_HOP, ...CLIENT_CREDENTIAL_HEADERS, 'expect', 'host']);

/**
 * The headers of the upstream request: the client's, minus hop-by-hop headers (and those its
 * Connection header names), minus every client credential, minus Content-Length when the body was
 * read (it may have been reshaped; undici counts it), plus `extra` (the upstream key …).
 * Built as a new object: deleting from req.headers would slow every later access to it.
 */
export function upstreamRequestHeaders(client: IncomingHttpHeaders, extra: Record<string, string>, bodyWasRead: boolean): UpstreamHeaders {
  const named = client.connection === undefined ? undefined : connectionListed(client);
  const out: UpstreamHeaders = {};
  for (const name in client) {
    if (NOT_FORWARDED.has(name) || named?.includes(name) || (bodyWasRead && name === 'content-length')) continue;
    out[name] = client[name];
  }
  for (const name in extra) out[name] = extra[name];
  return out;
}

/**
 * The upstream's headers as the client gets them: hop-by-hop removed, and upstream cookies dropped
 * (they belong to the gateway's session with OpenAI, not to the client). Everything else, such as
 * x-request-id, openai-processing-ms and x-ratelimit-*, passes unchanged.
 */
export function responseHeaders(upstream: UpstreamHeaders): OutgoingHttpHeaders {
  const named = upstream.connection === undefined ? undefined : connectionListed(upstream);
  const out: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || HOP_BY_HOP.has(name) || name === 'set-cookie' || named?.includes(name)) continue;
    out[name] = value;
  }
  return out;
}
