import { FAMILIES, INFERENCE_FAMILIES, type Family } from './families.js';
import { compileModelGlobs } from './modelMatch.js';
import type { PolicyFields } from './schema.js';

/** A key's effective policy, compiled once when the key is loaded (it is read on every request). */
export interface Policy {
  families: ReadonlySet<Family>;
  /** Absent: any model. */
  models?: { patterns: readonly string[]; allows(model: string): boolean };
  rpm?: number;
  tpm?: number;
  /** Limits in integer nano-dollars (USD × 1e9), as costs are stored. */
  budget: { daily?: number; monthly?: number; total?: number };
}

const nano = (usd: number | null | undefined): number | undefined =>
  usd === null || usd === undefined ? undefined : Math.round(usd * 1e9);

function familiesOf(list: readonly string[] | undefined): Set<Family> {
  const out = new Set<Family>();
  for (const name of list ?? ['inference']) {
    if (name === 'inference') INFERENCE_FAMILIES.forEach((f) => out.add(f));
    else if (name === '*') FAMILIES.forEach((f) => out.add(f));
    else out.add(name as Family);
  }
  return out;
}

/** The key's own fields over the defaults: whole fields, except budget, merged limit by limit. */
export function resolvePolicy(defaults: PolicyFields = {}, own: PolicyFields = {}): Policy {
  const models = own.models ?? defaults.models;
  const rpm = own.rpm === undefined ? defaults.rpm : own.rpm;
  const tpm = own.tpm === undefined ? defaults.tpm : own.tpm;
  const budget = { ...defaults.budget, ...own.budget };
  const policy: Policy = {
    families: familiesOf(own.endpoints ?? defaults.endpoints),
    budget: { daily: nano(budget.daily_usd), monthly: nano(budget.monthly_usd), total: nano(budget.total_usd) },
  };
  if (models) policy.models = { patterns: models, allows: compileModelGlobs(models) };
  if (rpm) policy.rpm = rpm;
  if (tpm) policy.tpm = tpm;
  return policy;
}

export const DEFAULT_POLICY: Policy = resolvePolicy();
