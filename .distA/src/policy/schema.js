import { z } from 'zod';
import { FAMILIES } from './families.js';
const families = z.array(z.enum([...FAMILIES, 'inference', '*'])).min(1);
/**
 * What a key may do. In config.json's `defaults` for every key; on a keys.json entry to override a
 * field for that key (budget field by field; null removes a default limit).
 */
export const PolicyFieldsSchema = z.object({
    /** Endpoint families this key may call; "inference" stands for the default set, "*" for all. */
    endpoints: families.optional(),
    /** Allowed models, as globs (gpt-4o*). Absent: any model. */
    models: z.array(z.string().min(1)).min(1).optional(),
    /** Requests per minute. */
    rpm: z.number().int().positive().nullable().optional(),
    /** Tokens per minute (input + output, estimated before and settled after each request). */
    tpm: z.number().int().positive().nullable().optional(),
    budget: z
        .object({
        daily_usd: z.number().nonnegative().nullable().optional(),
        monthly_usd: z.number().nonnegative().nullable().optional(),
        total_usd: z.number().nonnegative().nullable().optional(),
    })
        .strict()
        .optional(),
});
export const DefaultsSchema = PolicyFieldsSchema.strict();
//# sourceMappingURL=schema.js.map