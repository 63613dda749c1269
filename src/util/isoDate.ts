/**
 * Epoch ms of an ISO date (`2026-12-31`, read as UTC midnight) or date-time, or NaN when it is not
 * one, or names a day that does not exist: Date.parse rolls 2027-02-30 over to 2 March.
 */
export function parseIsoDate(value: string): number {
  if (!/^\d{4}-\d{2}-\d{2}/.test(value)) return Number.NaN;
  const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  const day = Date.parse(`${value.slice(0, 10)}T00:00:00Z`);
  if (Number.isNaN(t) || Number.isNaN(day) || new Date(day).toISOString().slice(0, 10) !== value.slice(0, 10)) return Number.NaN;
  return t;
}
