import type { ServerResponse } from 'node:http';
import type { RequestContext } from '../http/context.js';
import { sendError } from '../http/errors.js';
import type { UsageRow } from '../storage/usageStore.js';
import type { Pricing } from '../usage/pricing.js';
import type { BudgetTracker } from './budget.js';
import { estimateRequest } from './estimate.js';
import { familyOf } from './families.js';
import { pathProblem } from './plainPath.js';
import { formatReset, type RateLimiter, type Refusal } from './rateLimiter.js';

export interface PolicyEngine {
  limiter: RateLimiter;
  budgets: BudgetTracker;
  pricing: Pricing;
}

/** Step 1, before any body is read: may this key call this endpoint family at all? */
export function authorizeEndpoint(ctx: RequestContext, res: ServerResponse): boolean {
  const problem = pathProblem(ctx.path);
  if (problem !== undefined) {
    sendError(res, 400, `Keyward does not forward paths with ${problem}.`, 'invalid_request_error', 'invalid_path');
    return false;
  }
  const family = familyOf(ctx.method, ctx.path);
  if (ctx.principal!.policy.families.has(family)) return true;
  sendError(
    res,
    403,
    `This key may not use the "${family}" endpoints (${ctx.method} ${ctx.path}). Ask your Keyward operator to add "${family}" to the key's endpoints.`,
    'invalid_request_error',
    'endpoint_not_allowed',
  );
  return false;
}

function decoded(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** Step 2, once the model is known: is it on the key's list? GET /v1/models/{id} counts too. */
export function authorizeModel(ctx: RequestContext, res: ServerResponse): boolean {
  const models = ctx.principal!.policy.models;
  if (!models) return true;
  // The id in a path is percent-encoded (decoded here; a malformed escape matches nothing rather
  // than throwing); the model in a body is taken as it is.
  const fromPath = ctx.endpoint === 'models' && ctx.method === 'GET';
  const model = fromPath ? ctx.path.split('/')[3] : ctx.requestModel;
  const tool = toolModels(ctx.bodyJson).find((m) => !models.allows(m));
  if (tool !== undefined) return refuseModel(res, tool, models.patterns, 'tools');
  if (model === undefined || model === '') return true; // no model named: nothing to refuse (OpenAI will say what is missing)
  const id = fromPath ? decoded(model) : model;
  if (id !== undefined && models.allows(id)) return true;
  return refuseModel(res, model, models.patterns, 'model');
}

function refuseModel(res: ServerResponse, model: string, patterns: readonly string[], param: string): false {
  sendError(res, 403, `This key may not use the model "${model}". Allowed: ${patterns.join(', ')}.`, 'invalid_request_error', 'model_not_allowed', param);
  return false;
}

/** The image_generation tool's model when it names none (OpenAI's API reference). */
const IMAGE_TOOL_DEFAULT_MODEL = 'gpt-image-1';

/**
 * Models the request's tools run: a Responses request's image_generation tool runs a GPT Image
 * model (its own `model`, or OpenAI's default), billed to the account like any other.
 */
function toolModels(body: unknown): string[] {
  const tools = body && typeof body === 'object' ? (body as { tools?: unknown }).tools : undefined;
  if (!Array.isArray(tools)) return [];
  const named: string[] = [];
  for (const t of tools) {
    if (!t || typeof t !== 'object') continue;
    const { model, type } = t as { model?: unknown; type?: unknown };
    if (typeof model === 'string') named.push(model);
    else if (type === 'image_generation') named.push(IMAGE_TOOL_DEFAULT_MODEL);
  }
  return named;
}

/** OpenAI's SDKs retry every 429 unless told not to; waiting will not help these. */
const NO_RETRY = { 'x-should-retry': 'false' };

function rateHeaders(r: Refusal): Record<string, string> {
  const h: Record<string, string> = Number.isFinite(r.retryAfterMs) ? {} : { ...NO_RETRY };
  if (Number.isFinite(r.retryAfterMs)) h['retry-after'] = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  for (const [kind, s] of [['requests', r.requests], ['tokens', r.tokens]] as const) {
    if (!s) continue;
    h[`x-ratelimit-limit-${kind}`] = String(s.limit);
    h[`x-ratelimit-remaining-${kind}`] = String(s.remaining);
    h[`x-ratelimit-reset-${kind}`] = formatReset(s.resetMs);
  }
  return h;
}

const usd = (nano: number) => `$${(nano / 1e9).toFixed(2)}`;

export type Admission =
  | { ok: true }
  | { ok: false; status: 429; message: string; type: string; code: string; headers: Record<string, string> };

/**
 * Step 3, last before forwarding: rate limits and budgets, each reserving what the request will
 * probably use (settled by `settle` when it ends). Single-threaded and synchronous, so concurrent
 * requests see each other's reservations. Answers nothing itself (HTTP and WebSocket refuse alike).
 */
export function checkAdmission(engine: PolicyEngine, ctx: RequestContext, declaredBytes: number): Admission {
  const { policy, id } = ctx.principal!;
  const { rpm, tpm, budget } = policy;
  const limited = rpm !== undefined || tpm !== undefined;
  const budgeted = budget.daily !== undefined || budget.monthly !== undefined || budget.total !== undefined;
  if (!limited && !budgeted) return { ok: true };
  const estimate = estimateRequest(ctx, declaredBytes, engine.pricing);
  const refusal = limited ? engine.limiter.take(id, rpm, tpm, estimate.tokens) : undefined;
  if (refusal) {
    const unit = refusal.kind === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
    const wait = Number.isFinite(refusal.retryAfterMs) ? `Please try again in ${formatReset(refusal.retryAfterMs)}.` : 'This request is larger than the limit.';
    return {
      ok: false,
      status: 429,
      message: `Rate limit reached for ${unit} on this Keyward key: Limit ${refusal.limit}, Requested ${refusal.requested}. ${wait}`,
      type: refusal.kind,
      code: 'rate_limit_exceeded',
      headers: rateHeaders(refusal),
    };
  }
  const over = budgeted ? engine.budgets.reserve(id, budget, estimate.costNano) : undefined;
  if (over) {
    // Give back the rate-limit share taken above: the request never ran.
    if (limited) engine.limiter.refund(id, rpm, tpm, estimate.tokens);
    const next = over.window === 'total' ? '' : `, or wait for the next ${over.window === 'daily' ? 'day' : 'month'} (UTC)`;
    return {
      ok: false,
      status: 429,
      message: `This Keyward key has used its ${over.window} budget (${usd(over.spent)} of ${usd(over.limit)}). Ask your Keyward operator to raise it${next}.`,
      type: 'insufficient_quota',
      code: 'insufficient_quota',
      headers: NO_RETRY,
    };
  }
  ctx.reservation = { tokens: limited ? estimate.tokens : 0, costNano: budgeted ? estimate.costNano : 0 };
  return { ok: true };
}

export function admit(engine: PolicyEngine, ctx: RequestContext, declaredBytes: number, res: ServerResponse): boolean {
  const a = checkAdmission(engine, ctx, declaredBytes);
  if (!a.ok) sendError(res, a.status, a.message, a.type, a.code, null, a.headers);
  return a.ok;
}

/** The request ended: replace its reservations by what it really used. */
export function settle(engine: PolicyEngine, ctx: RequestContext, row: UsageRow | undefined): void {
  const r = ctx.reservation;
  const principal = ctx.principal;
  if (!principal) return;
  // A request that was answered but whose cost is unknown (cut short before its usage arrived, a
  // coding or shape Keyward cannot read) is charged its estimate: OpenAI bills it all the same.
  const answered = row !== undefined && row.status !== null && row.status < 400;
  const cost = row?.cost_nano_usd ?? (answered && r ? r.costNano : 0);
  if (r) {
    const actual = row?.total_tokens ?? ((row?.input_tokens ?? 0) + (row?.output_tokens ?? 0) || r.tokens);
    engine.limiter.settle(principal.id, principal.policy.tpm, r.tokens, actual);
    engine.budgets.settle(principal.id, r.costNano, cost);
  } else if (cost) {
    engine.budgets.settle(principal.id, 0, cost);
  }
}
