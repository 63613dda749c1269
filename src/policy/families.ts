import { pathProblem } from './plainPath.js';

/**
 * Every path under /v1/ belongs to one endpoint family. Keys may use the inference families by
 * default; anything that reads or changes the account (files, batches, fine-tuning, the admin API …)
 * must be granted by name.
 */
/** What a key may use when its policy names no endpoints. */
export const INFERENCE_FAMILIES = ['chat', 'responses', 'completions', 'embeddings', 'images', 'audio', 'moderations', 'models'] as const;

export const FAMILIES = [
  ...INFERENCE_FAMILIES,
  'realtime',
  'realtime_direct',
  'stored_completions',
  'conversations',
  'files',
  'uploads',
  'batches',
  'vector_stores',
  'assistants',
  'fine_tuning',
  'evals',
  'containers',
  'videos',
  'organization',
  'other',
] as const;

export type Family = (typeof FAMILIES)[number];

/** First path segment after /v1/ → family; the exceptions below are decided by method and depth. */
const BY_SEGMENT: Record<string, Family> = {
  chat: 'chat',
  responses: 'responses',
  completions: 'completions',
  embeddings: 'embeddings',
  images: 'images',
  audio: 'audio',
  moderations: 'moderations',
  models: 'models',
  realtime: 'realtime',
  conversations: 'conversations',
  files: 'files',
  uploads: 'uploads',
  batches: 'batches',
  vector_stores: 'vector_stores',
  assistants: 'assistants',
  threads: 'assistants',
  fine_tuning: 'fine_tuning',
  fine_tunes: 'fine_tuning',
  evals: 'evals',
  containers: 'containers',
  videos: 'videos',
  organization: 'organization',
};

/**
 * `path` is the URL path (no query). Creating a chat completion is `chat`; listing, reading,
 * changing or deleting stored completions (everyone's, project-wide) is `stored_completions`.
 * Deleting a model deletes a fine-tuned model of the account: `fine_tuning`, not `models`.
 * A path that is not plain (plainPath.ts) is `other`: it does not resolve dot segments or escapes.
 */
export function familyOf(method: string, path: string): Family {
  // Memoised: a gateway sees the same few method + path pairs over and over, and splitting and
  // testing each segment cost ~1 µs a request (profiled). Paths with ids are many: the memo is
  // emptied when full, as the price memo is, and long paths are not kept (a client could otherwise
  // pin 1,000 × 16 KB of paths).
  if (path.length > MEMO_MAX_PATH) return classify(method, path);
  const memoKey = `${method} ${path}`;
  let family = memo.get(memoKey);
  if (family === undefined) {
    if (memo.size >= MEMO_LIMIT) memo.clear();
    family = classify(method, path);
    memo.set(memoKey, family);
  }
  return family;
}

const MEMO_LIMIT = 1000;
const MEMO_MAX_PATH = 256;
const memo = new Map<string, Family>();

function classify(method: string, path: string): Family {
  const parts = path.split('/').filter(Boolean);
  if (parts[0] !== 'v1' || parts.length < 2) return 'other';
  // A path an upstream could read as another endpoint (/v1/embeddings/../files) has no known
  // family. authorizeEndpoint refuses such paths first; this keeps familyOf safe on its own.
  if (pathProblem(path) !== undefined) return 'other';
  // Own properties only: /v1/constructor or /v1/__proto__ must not find Object.prototype's members.
  const family = Object.hasOwn(BY_SEGMENT, parts[1]!) ? BY_SEGMENT[parts[1]!]! : 'other';
  if (family === 'chat') {
    const create = method === 'POST' && parts.length === 3 && parts[2] === 'completions';
    return create ? 'chat' : parts[2] === 'completions' ? 'stored_completions' : 'other';
  }
  if (family === 'models' && method === 'DELETE') return 'fine_tuning';
  // Everything under /v1/realtime but the WebSocket itself (a GET upgrade) lets the client talk to
  // OpenAI directly (client secrets, WebRTC and SIP calls, an SDP offer POSTed to /v1/realtime):
  // outside Keyward's metering, models and budgets.
  if (family === 'realtime' && (parts.length > 2 || method !== 'GET')) return 'realtime_direct';
  return family;
}
