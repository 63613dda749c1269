import { z } from 'zod';
import { keyIdOf, sha256Hex } from './hash.js';
import { resolvePolicy } from '../policy/policy.js';
import { PolicyFieldsSchema, type PolicyFields } from '../policy/schema.js';
import type { KeyRecord } from './types.js';
import { parseIsoDate } from '../util/isoDate.js';
import { jsonErrorLine, lineAt } from '../util/jsonErrors.js';

const isoTime = z
  .string()
  .refine((s) => !Number.isNaN(parseIsoDate(s)), {
    message: 'must be an ISO date or time that exists, e.g. 2026-12-31 or 2026-12-31T18:00:00Z',
  });

/** One entry of keys.json: the seed's `{ key, name, email }`, or `key_sha256` instead of `key`. */
export const KeyEntrySchema = z
  .object({
    ...PolicyFieldsSchema.shape,
    key: z.string().min(16, 'a key must be at least 16 characters').optional(),
    key_sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (SHA-256 of the key)')
      .optional(),
    name: z.string().trim().min(1),
    email: z.email(),
    disabled: z.boolean().optional(),
    expires_at: isoTime.optional(),
    created_at: isoTime.optional(),
  })
  .strict()
  .refine((e) => (e.key === undefined) !== (e.key_sha256 === undefined), {
    message: 'needs exactly one of "key" or "key_sha256"',
  });

export type KeyEntry = z.infer<typeof KeyEntrySchema>;

export const KeyFileSchema = z.array(KeyEntrySchema);

/** A keys file that cannot be used; the message names the line and field. */
export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

/** Offsets where each element of the top-level JSON array starts (for line numbers in errors). */
function elementOffsets(text: string): number[] {
  const starts: number[] = [];
  let depth = 0;
  let inString = false;
  let expectValue = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"' || c === '{' || c === '[') {
      if (depth === 1 && expectValue) {
        starts.push(i);
        expectValue = false;
      }
      if (c === '"') inString = true;
      else depth++;
      if (depth === 1 && c === '[') expectValue = true;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectValue = true;
    else if (depth === 1 && expectValue && !/\s/.test(c)) {
      starts.push(i);
      expectValue = false;
    }
  }
  return starts;
}

export function recordOf(entry: KeyEntry, source: string, defaults?: PolicyFields): KeyRecord {
  const digest = entry.key_sha256?.toLowerCase() ?? sha256Hex(entry.key!);
  return {
    id: keyIdOf(digest),
    digest,
    name: entry.name,
    email: entry.email.toLowerCase(),
    disabled: entry.disabled === true,
    expiresAt: entry.expires_at === undefined ? undefined : parseIsoDate(entry.expires_at),
    source,
    policy: resolvePolicy(defaults, entry),
  };
}

/**
 * Parses and validates the text of a keys file. Throws KeyFileError naming the file, line and field
 * of the first problems; nothing partial is ever returned.
 */
export function parseKeyFile(
  original: string,
  fileName: string,
  source = 'keys.json',
  defaults?: PolicyFields,
): KeyRecord[] {
  const text = original.replace(/^\uFEFF/, ''); // a BOM, as Windows editors write it
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError(`${fileName}: not valid JSON: ${jsonErrorLine(text, err as Error)}`);
  }
  const parsed = KeyFileSchema.safeParse(raw);
  if (!parsed.success) {
    const offsets = elementOffsets(text);
    const problems = parsed.error.issues.slice(0, 5).map((issue) => {
      const [index, ...field] = issue.path;
      if (typeof index !== 'number') return issue.message;
      const entry = (raw as unknown[])[index] as { name?: unknown } | undefined;
      const who = typeof entry?.name === 'string' ? ` ("${entry.name}")` : '';
      const line = offsets[index] === undefined ? '' : `line ${lineAt(text, offsets[index])}, `;
      const where = field.length ? `field "${field.join('.')}"` : 'entry';
      return `${line}entry ${index + 1}${who}, ${where}: ${issue.message}`;
    });
    throw new KeyFileError(`${fileName}: ${problems.join('; ')}`);
  }
  const records = parsed.data.map((e) => recordOf(e, source, defaults));
  const seen = new Map<string, number>();
  records.forEach((r, i) => {
    const first = seen.get(r.digest);
    if (first !== undefined) {
      throw new KeyFileError(
        `${fileName}: entries ${first + 1} ("${records[first]!.name}") and ${i + 1} ("${r.name}") have the same key`,
      );
    }
    seen.set(r.digest, i);
  });
  return records;
}
