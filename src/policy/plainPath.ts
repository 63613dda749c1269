/**
 * Paths Keyward forwards at all. The endpoint family (families.ts) is decided on the path as sent,
 * and the path is forwarded as sent: an upstream, or a proxy before it, that resolved dot segments
 * (also around a decoded %2F), took a backslash for a slash, dropped ;parameters or matched names
 * in another case would serve a different endpoint than the one the key was checked for
 * (/v1/embeddings/../files). No OpenAI path needs any of these, so they are refused, whatever the
 * key may use: a key granted `other` (unknown endpoints) must not reach every other family that way.
 */

/**
 * `.` or `..`, plain or percent-encoded (%2e), as a whole segment, taking an encoded slash or
 * backslash for a separator too: an upstream that decodes them would resolve `..%2Ffiles`.
 * (An encoded slash alone is left: OpenAI-compatible servers name models `org%2Fname`.)
 */
const DOT_SEGMENT = /(?:^|\/|%2f|%5c)(?:\.|%2e){1,2}(?:\/|%2f|%5c|$)/i;
/** A backslash, a ;parameter, an encoded NUL. */
const AMBIGUOUS = /\\|;|%00/i;
/**
 * The segment after /v1/ that names the endpoint: OpenAI's are lower-case words with underscores.
 * Digits and hyphens cannot spell a known name another way, so unknown endpoints may use them.
 */
const ENDPOINT_NAME = /^[a-z][a-z0-9_-]*$/;

/** Why `path` (no query string) is refused, or undefined when it is plain. */
export function pathProblem(path: string): string | undefined {
  if (DOT_SEGMENT.test(path)) return 'dot segments';
  if (AMBIGUOUS.test(path)) return 'a backslash, a ;parameter or an encoded NUL';
  const name = endpointName(path);
  if (name !== '' && !ENDPOINT_NAME.test(name)) return "an endpoint name other than lower-case letters, digits, '_' and '-'";
  return undefined;
}

/** The segment after the first (`v1`), empty segments skipped as families.ts skips them. */
function endpointName(path: string): string {
  let start = path.indexOf('/', 1); // the slash after /v1
  if (start === -1) return '';
  while (path[start] === '/') start++;
  const end = path.indexOf('/', start);
  return path.slice(start, end === -1 ? path.length : end);
}
