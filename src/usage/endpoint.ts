/** The metered endpoint a path belongs to; `other` is forwarded and recorded without usage. */
export type Endpoint =
  | 'chat.completions'
  | 'responses'
  | 'responses.compact'
  | 'completions'
  | 'embeddings'
  | 'moderations'
  | 'images.generations'
  | 'images.edits'
  | 'images.variations'
  | 'audio.transcriptions'
  | 'audio.translations'
  | 'audio.speech'
  | 'models'
  | 'other';

const EXACT: Record<string, Endpoint> = {
  '/v1/chat/completions': 'chat.completions',
  '/v1/responses': 'responses',
  '/v1/responses/compact': 'responses.compact',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/v1/moderations': 'moderations',
  '/v1/images/generations': 'images.generations',
  '/v1/images/edits': 'images.edits',
  '/v1/images/variations': 'images.variations',
  '/v1/audio/transcriptions': 'audio.transcriptions',
  '/v1/audio/translations': 'audio.translations',
  '/v1/audio/speech': 'audio.speech',
  '/v1/models': 'models',
};

/**
 * `path` is the URL path without its query string. Empty segments are ignored (/v1//chat/completions/
 * is chat completions), as they are for endpoint families: an upstream that merges slashes must not
 * turn an unmetered path into a metered call.
 */
export function endpointOf(path: string): Endpoint {
  const p = path.includes('//') || path.endsWith('/') ? '/' + path.split('/').filter(Boolean).join('/') : path;
  const hit = EXACT[p];
  if (hit) return hit;
  if (p.startsWith('/v1/models/')) return 'models';
  return 'other';
}
