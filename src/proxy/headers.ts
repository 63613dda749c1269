import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

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

function connectionListed(headers: IncomingHttpHeaders): string[] {
  const value = headers.connection;
  if (typeof value !== 'string') return [];
  return value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s && s !== 'close' && s !== 'keep-alive');
}

/** Prepares the client's headers for the upstream hop, in place (http-proxy copies req.headers). */
export function stripRequestHopHeaders(headers: IncomingHttpHeaders): void {
  for (const name of connectionListed(headers)) delete headers[name];
  for (const name of HOP_BY_HOP) delete headers[name];
  // Node answers `Expect: 100-continue` itself; forwarding it would make the upstream wait for us.
  delete headers.expect;
}

/**
 * The upstream's headers as the client gets them: hop-by-hop removed, and upstream cookies dropped
 * (they belong to the gateway's session with OpenAI, not to the client). Everything else, such as
 * x-request-id, openai-processing-ms and x-ratelimit-*, passes unchanged.
 */
export function responseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  const drop = new Set(connectionListed(upstream));
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || HOP_BY_HOP.has(name) || drop.has(name) || name === 'set-cookie') continue;
    out[name] = value;
  }
  return out;
}
