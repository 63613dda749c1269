import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { authenticate } from './auth/authenticate.js';
import type { Config } from './config/schema.js';
import type { RequestContext } from './http/context.js';
import { sendError } from './http/errors.js';
import { openContext, type ContextHooks } from './http/requestContext.js';
import type { KeyRing } from './keys/keyRing.js';
import { admit, authorizeEndpoint, authorizeModel, type PolicyEngine } from './policy/authorize.js';
import type { Policy } from './policy/policy.js';
import { hasBody, isJson, isMultipart } from './proxy/bodyKind.js';
import { withinDeclaredLimit } from './proxy/bodyLimit.js';
import type { Forward } from './proxy/forward.js';
import { topLevelKeyCount } from './usage/jsonFields.js';
import { mustReadJson, mustReadMultipart, readAndShape, readMultipartFields } from './proxy/shapeRequest.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Endpoints whose POST names a model (in the JSON body, or a multipart field). */
const TAKES_MODEL = new Set([
  'chat.completions', 'completions', 'responses', 'responses.compact', 'embeddings', 'moderations', 'images.generations',
  'images.edits', 'images.variations', 'audio.transcriptions', 'audio.translations', 'audio.speech',
]);

/**
 * For a key with limits, the body must be readable before anything is forwarded (a compressed one
 * cannot be checked or estimated); for a key with a model list, the model must also be plain to see:
 * a body Keyward cannot read (another content type, broken JSON), no model, or two model fields
 * would let the upstream pick a model the list does not allow. Fails closed, with a 400.
 */
function modelIsKnown(ctx: RequestContext, req: IncomingMessage, res: ServerResponse): boolean {
  const policy = ctx.principal!.policy;
  if (policy.models && ctx.method === 'POST' && hasUnreadableBody(req)) {
    // Any endpoint: a newer one that takes a model (/v1/responses/compact) may read it from a body
    // Keyward cannot. OpenAI's POST bodies are all JSON or multipart.
    sendError(res, 400, 'This key has a model list: send the request body as JSON (or multipart for uploads).', 'invalid_request_error', 'model_required', 'model');
    return false;
  }
  if (!hasLimits(policy) || ctx.method !== 'POST' || !TAKES_MODEL.has(ctx.endpoint)) return true;
  // A compressed body cannot be read for the model or the estimate: refused for any key with limits.
  const encoded = req.headers['content-encoding'] !== undefined && req.headers['content-encoding'] !== 'identity';
  if (!policy.models && !encoded) return true;
  // JSON.parse keeps the last of two "model" keys; another parser may keep the first.
  if (ctx.bodyJson !== undefined && ctx.body && topLevelKeyCount(ctx.body, 'model') > 1) ctx.modelConflict = true;
  if (!encoded && ctx.requestModel !== undefined && !ctx.modelConflict) return true;
  sendError(
    res,
    400,
    encoded
      ? 'This key has limits: send the request body uncompressed so its model and size can be checked.'
      : ctx.modelConflict
        ? 'The request names more than one model.'
        : 'This key has a model list: send a JSON (or multipart) body that names its "model".',
    'invalid_request_error',
    'model_required',
    'model',
  );
  return false;
}

/** A body that is there but neither JSON nor multipart. */
function hasUnreadableBody(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  return hasBody(req) && !isJson(type) && !isMultipart(type);
}

/** Whether admission needs the parsed body (model and size for estimates, model for the list). */
function hasLimits(p: Policy): boolean {
  return p.models !== undefined || p.rpm !== undefined || p.tpm !== undefined ||
    p.budget.daily !== undefined || p.budget.monthly !== undefined || p.budget.total !== undefined;
}

/** /v1/models however it is spelled (/v1/models/, /v1//models): the list, not one model. */
const isModelList = (path: string) => path.split('/').filter(Boolean).join('/') === 'v1/models';

/**
 * The path of every /v1/ request, in order:
 *   context → CORS → authenticate → endpoint family → body limit → read/shape the body if needed
 *   → model → rate limit and budget → forward.
 * Plain functions on node:http's request and response rather than Express middleware: this path
 * runs for every token anyone buys, and Express's router cost more than all of it together.
 */
export function createGateway(parts: {
  config: Config;
  keys: KeyRing;
  hooks: ContextHooks;
  engine: PolicyEngine;
  forward: Forward;
  cors: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
  log: Logger;
}): Handler {
  const { config, keys, hooks, engine, forward, log } = parts;
  const max = config.maxBodyBytes;

  const failed = (ctx: RequestContext, res: ServerResponse) => (err: unknown) => {
    log.error({ err, request_id: ctx.id }, 'request failed inside Keyward');
    sendError(res, 500, 'Keyward failed to handle this request.', 'server_error', 'internal_error');
  };

  const afterBody = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => {
    if (!modelIsKnown(ctx, req, res)) return;
    if (!authorizeModel(ctx, res)) return;
    // A body read whole counts its real size (a chunked one declares none).
    if (!admit(engine, ctx, ctx.body?.length ?? Number(req.headers['content-length'] ?? 0), res)) return;
    const models = ctx.principal!.policy.models;
    if (models && ctx.method === 'GET' && isModelList(ctx.path)) ctx.modelFilter = models.allows;
    forward(ctx, req, res);
  };

  /** Once the body is read: from the request's 'end' event, so a throw must answer 500, not escape into the emitter. */
  const afterRead = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => (err: unknown, ok: boolean) => {
    if (err) return failed(ctx, res)(err);
    if (ok) guarded(afterBody, ctx, req, res);
  };

  const proceed = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => {
    if (!authenticate(keys, ctx, req, res)) return;
    if (!authorizeEndpoint(ctx, res)) return;
    if (!withinDeclaredLimit(req, res, max)) return;
    const policy = ctx.principal!.policy;
    const restricted = policy.models !== undefined;
    const limited = hasLimits(policy);
    // A key with limits has its JSON bodies read whatever the endpoint: its estimate needs the model
    // and the input (an embeddings batch unread was reserved $0.01, however large; a chunked body
    // declares no length to estimate from).
    if (mustReadJson(ctx, req, limited)) {
      return readAndShape(ctx, req, res, max, config.logBodies || limited, afterRead(ctx, req, res));
    }
    // An upload of unknown length is read whole too (bounded by maxBodyMb), to be estimated by its size.
    if (mustReadMultipart(req, restricted || (limited && req.headers['content-length'] === undefined))) {
      const read = afterRead(ctx, req, res);
      return void readMultipartFields(ctx, req, res, max).then((ok) => read(undefined, ok), (err: unknown) => read(err, false));
    }
    afterBody(ctx, req, res);
  };

  type Step = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => void;
  const guarded = (step: Step, ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => {
    try {
      step(ctx, req, res);
    } catch (err) {
      failed(ctx, res)(err); // one bad request must never take the process (and everyone's streams) down
    }
  };

  return (req, res) => {
    const ctx = openContext(req, res, hooks);
    if (config.logBodies) ctx.keepResponseJson = true;
    // CORS concerns browsers only, and browsers always send Origin: SDKs and servers skip it.
    if (req.headers.origin !== undefined || req.method === 'OPTIONS') parts.cors(req, res, () => guarded(proceed, ctx, req, res));
    else guarded(proceed, ctx, req, res);
  };
}
