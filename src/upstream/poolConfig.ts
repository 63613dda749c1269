import { z } from 'zod';
import { keyIdOf, sha256Hex } from '../keys/hash.js';

/** A label doubles as the key's public id (usage rows, logs, status page), so keep it plain. */
const LABEL_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** An upstream key goes into an Authorization header: a space or a non-ASCII character would break the request. */
export const HEADER_SAFE_KEY = /^[\x21-\x7e]+$/;
export const HEADER_SAFE_KEY_RULE = 'a key must be printable ASCII without spaces';

/** One real OpenAI key of the upstream pool, as config.json holds it. */
export const UpstreamKeySchema = z
  .object({
    key: z
      .string()
      .min(8, 'a key must be at least 8 characters')
      .regex(HEADER_SAFE_KEY, HEADER_SAFE_KEY_RULE),
    label: z
      .string()
      .regex(LABEL_RE, 'a label is 1-64 letters, digits, "_", "." or "-", starting with a letter or digit')
      .optional(),
    organization: z.string().trim().min(1).optional(),
    project: z.string().trim().min(1).optional(),
  })
  .strict()
  // The label is logged and shown as the key's id; it must not smuggle the key in.
  .refine((e) => e.label === undefined || !e.label.includes(e.key), {
    message: 'a label must not contain the key',
    path: ['label'],
  });

export type UpstreamKeyConfig = z.infer<typeof UpstreamKeySchema>;

/** The public id of an upstream key: its label, else a digest prefix. Never the key itself. */
export function upstreamKeyId(entry: Pick<UpstreamKeyConfig, 'key' | 'label'>): string {
  return entry.label ?? `key_${keyIdOf(sha256Hex(entry.key))}`;
}

/**
 * Problems with a list of keys as a whole (empty, repeated key, repeated id), numbered from 1.
 * Messages name items by position only: a mis-split "label" could be a piece of a key.
 */
export function upstreamKeyListProblems(keys: readonly UpstreamKeyConfig[], noun = 'entry'): string[] {
  if (keys.length === 0) return ['needs at least one key'];
  const problems: string[] = [];
  const byKey = new Map<string, number>();
  const byId = new Map<string, number>();
  keys.forEach((entry, i) => {
    const n = i + 1;
    const sameKey = byKey.get(entry.key);
    if (sameKey !== undefined) problems.push(`${noun} ${n} repeats the key of ${noun} ${sameKey}`);
    else byKey.set(entry.key, n);
    const id = upstreamKeyId(entry);
    const sameId = byId.get(id);
    // Two different keys with the same id would mix their usage rows and status.
    if (sameId !== undefined && sameKey === undefined) {
      problems.push(`${noun} ${n} repeats the label of ${noun} ${sameId}`);
    } else if (sameId === undefined) byId.set(id, n);
  });
  return problems;
}

/** The whole pool as config.json holds it (an array of UpstreamKeySchema). */
export const UpstreamKeyListSchema = z.array(UpstreamKeySchema).superRefine((keys, ctx) => {
  for (const message of upstreamKeyListProblems(keys)) ctx.addIssue({ code: 'custom', message });
});

/** A list of upstream keys that cannot be used; the message never contains a key. */
export class UpstreamKeysError extends Error {
  override name = 'UpstreamKeysError';
}

/**
 * A `label=` prefix. The key part must not start with "=", so a key that merely ends in base64
 * padding ("abc...xyz==") is read as a key, not as a label.
 */
const LABELLED_RE = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=([^=].*)$/s;

/**
 * OPENAI_API_KEYS: comma-separated keys, each optionally `label=key`,
 * e.g. `main=sk-aaa,backup=sk-bbb`. Blank items are skipped. Errors name items by position only,
 * since a key with "=" inside could be mis-split and its first part taken for a label.
 */
export function parseUpstreamKeysEnv(value: string, name = 'OPENAI_API_KEYS'): UpstreamKeyConfig[] {
  const out: UpstreamKeyConfig[] = [];
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  items.forEach((item, i) => {
    const where = `${name}: item ${i + 1}`;
    if (item.startsWith('=')) throw new UpstreamKeysError(`${where} has an empty label before "="`);
    if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}=$/.test(item)) {
      throw new UpstreamKeysError(`${where} has a label but no key after "="`);
    }
    const m = LABELLED_RE.exec(item);
    const entry = m ? { label: m[1], key: m[2]!.trim() } : { key: item };
    const parsed = UpstreamKeySchema.safeParse(entry);
    if (!parsed.success) {
      // Zod messages are our own texts above; none echoes the input.
      const why = parsed.error.issues.map((issue) => issue.message).join('; ');
      throw new UpstreamKeysError(`${where}: ${why}`);
    }
    out.push(parsed.data);
  });
  const problems = upstreamKeyListProblems(out, 'item');
  if (problems.length) throw new UpstreamKeysError(`${name}: ${problems.join('; ')}`);
  return out;
}
