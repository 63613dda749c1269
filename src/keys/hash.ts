import { createHash } from 'node:crypto';

/** Keys are looked up by their SHA-256, so a keys file may hold digests instead of keys. */
export function sha256Hex(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** The public id of a key: a digest prefix, safe to log and store. */
export function keyIdOf(digest: string): string {
  return digest.slice(0, 12);
}
