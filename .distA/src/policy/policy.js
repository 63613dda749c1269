import { FAMILIES, INFERENCE_FAMILIES } from './families.js';
import { compileModelGlobs } from './modelMatch.js';
const nano = (usd) => usd === null || usd === undefined ? undefined : Math.round(usd * 1e9);
function familiesOf(list) {
    const out = new Set();
    for (const name of list ?? ['inference']) {
        if (name === 'inference')
            INFERENCE_FAMILIES.forEach((f) => out.add(f));
        else if (name === '*')
            FAMILIES.forEach((f) => out.add(f));
        else
            out.add(name);
    }
    return out;
}
/** The key's own fields over the defaults: whole fields, except budget, merged limit by limit. */
export function resolvePolicy(defaults = {}, own = {}) {
    const models = own.models ?? defaults.models;
    const rpm = own.rpm === undefined ? defaults.rpm : own.rpm;
    const tpm = own.tpm === undefined ? defaults.tpm : own.tpm;
    const budget = { ...defaults.budget, ...own.budget };
    const policy = {
        families: familiesOf(own.endpoints ?? defaults.endpoints),
        budget: { daily: nano(budget.daily_usd), monthly: nano(budget.monthly_usd), total: nano(budget.total_usd) },
    };
    if (models)
        policy.models = { patterns: models, allows: compileModelGlobs(models) };
    if (rpm)
        policy.rpm = rpm;
    if (tpm)
        policy.tpm = tpm;
    return policy;
}
export const DEFAULT_POLICY = resolvePolicy();
//# sourceMappingURL=policy.js.map