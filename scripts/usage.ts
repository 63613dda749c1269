/**
 * npm run usage [-- <email>] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--json | --csv]
 * Everyone's requests, tokens and cost (sorted by cost), or one person's by model and by day.
 * --until is inclusive: a date means through the end of that day (UTC).
 */
import { existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadPaths } from '../src/config/load.js';
import { SqliteUsageStore } from '../src/storage/sqlite/sqliteUsageStore.js';
import type { GroupTotals, UsageFilter, UserTotals } from '../src/storage/usageStore.js';
import { parseIsoDate } from '../src/util/isoDate.js';

const USAGE = 'usage: npm run usage [-- <email>] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--json | --csv]';
const DAY = 86_400_000;

function fail(message: string): never {
  process.stderr.write(`usage: ${message}\n`);
  process.exit(1);
}

/** A date (whole UTC day) or an ISO time; `end` moves a bare date to the start of the next day. */
export function parseWhen(flag: string, value: string, end: boolean): number {
  const t = parseIsoDate(value);
  if (Number.isNaN(t)) fail(`${flag} must be a date like 2026-11-01, got "${value}"`);
  return end && /^\d{4}-\d{2}-\d{2}$/.test(value) ? t + DAY : t;
}

const usd = (n: number) => `$${n.toFixed(6)}`;
const int = (n: number) => n.toLocaleString('en-US');

/**
 * Names, emails and models come from key holders (a model is recorded as requested): control
 * characters are shown escaped, so none can move the cursor or clear the operator's terminal.
 */
const printable = (s: string) => s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

function table(head: string[], raw: string[][], right: Set<number>): string {
  const rows = raw.map((r) => r.map(printable));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

function csvCell(v: unknown): string {
  let s = String(v ?? '');
  // A text a spreadsheet would run as a formula (=, +, -, @, or a tab or CR first) is quoted with
  // a leading apostrophe (OWASP's advice for CSV injection). Numbers are written as they are.
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csv(head: string[], rows: unknown[][]): string {
  return [head, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

function printUsers(users: UserTotals[], format: 'text' | 'json' | 'csv'): void {
  const fields = ['email', 'name', 'requests', 'input_tokens', 'output_tokens', 'total_tokens', 'cost_usd'] as const;
  if (format === 'json') {
    process.stdout.write(JSON.stringify(users.map((u) => Object.fromEntries(fields.map((f) => [f, u[f]]))), null, 2) + '\n');
  } else if (format === 'csv') {
    process.stdout.write(csv([...fields], users.map((u) => fields.map((f) => u[f]))));
  } else if (!users.length) {
    process.stdout.write('No usage recorded in this period.\n');
  } else {
    const total = users.reduce((s, u) => s + u.cost_usd, 0);
    process.stdout.write(
      table(
        ['EMAIL', 'NAME', 'REQUESTS', 'INPUT TOKENS', 'OUTPUT TOKENS', 'COST'],
        users.map((u) => [u.email, u.name, int(u.requests), int(u.input_tokens), int(u.output_tokens), usd(u.cost_usd)]),
        new Set([2, 3, 4, 5]),
      ) + `\nTotal cost: ${usd(total)}\n`,
    );
  }
}

function printGroups(email: string, byModel: GroupTotals[], byDay: GroupTotals[], format: 'text' | 'json' | 'csv'): void {
  const fields = ['requests', 'input_tokens', 'cached_input_tokens', 'output_tokens', 'total_tokens', 'cost_usd', 'unpriced_requests'] as const;
  const pick = (g: GroupTotals, key: 'model' | 'day') => ({ [key]: g.group, ...Object.fromEntries(fields.map((f) => [f, g[f]])) });
  if (format === 'json') {
    process.stdout.write(
      JSON.stringify({ email, by_model: byModel.map((g) => pick(g, 'model')), by_day: byDay.map((g) => pick(g, 'day')) }, null, 2) + '\n',
    );
    return;
  }
  if (format === 'csv') {
    const rows = [...byModel.map((g) => ['model', g.group, ...fields.map((f) => g[f])]), ...byDay.map((g) => ['day', g.group, ...fields.map((f) => g[f])])];
    process.stdout.write(csv(['dimension', 'group', ...fields], rows));
    return;
  }
  if (!byModel.length) {
    process.stdout.write(`No usage recorded for ${email} in this period.\n`);
    return;
  }
  const render = (title: string, groups: GroupTotals[]) =>
    table(
      [title, 'REQUESTS', 'INPUT TOKENS', 'CACHED', 'OUTPUT TOKENS', 'COST'],
      groups.map((g) => [
        g.group + (g.unpriced_requests ? ' *' : ''),
        int(g.requests),
        int(g.input_tokens),
        int(g.cached_input_tokens),
        int(g.output_tokens),
        usd(g.cost_usd),
      ]),
      new Set([1, 2, 3, 4, 5]),
    );
  const total = byModel.reduce((s, g) => s + g.cost_usd, 0);
  const unpriced = byModel.some((g) => g.unpriced_requests) ? '\n* includes requests without a price (their cost is not counted)\n' : '';
  process.stdout.write(`Usage of ${email}\n\n${render('MODEL', byModel)}\n${render('DAY (UTC)', byDay)}\nTotal cost: ${usd(total)}\n${unpriced}`);
}

function main(): void {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        since: { type: 'string' },
        until: { type: 'string' },
        json: { type: 'boolean', default: false },
        csv: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  if (values.json && values.csv) fail('choose one of --json and --csv');
  if (positionals.length > 1) fail(`one email at most\n${USAGE}`);
  const format = values.json ? 'json' : values.csv ? 'csv' : 'text';
  const filter: UsageFilter = {};
  if (values.since !== undefined) filter.sinceMs = parseWhen('--since', values.since, false);
  if (values.until !== undefined) filter.untilMs = parseWhen('--until', values.until, true);
  const email = positionals[0]?.toLowerCase();
  if (email !== undefined) filter.email = email;

  let usageDb: string;
  try {
    usageDb = loadPaths().usageDb;
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  // An empty file is no database yet either: opening it would create the tables (a report only reads).
  const stat = existsSync(usageDb) ? statSync(usageDb) : undefined;
  if (!stat || (stat.isFile() && stat.size === 0)) {
    if (format === 'text') process.stdout.write(`No usage recorded yet (${usageDb} ${stat ? 'is empty' : 'does not exist'}).\n`);
    else if (email === undefined) printUsers([], format);
    else printGroups(email, [], [], format);
    return;
  }
  let store: SqliteUsageStore | undefined;
  try {
    store = new SqliteUsageStore(usageDb);
    if (email === undefined) printUsers(store.totalsByUser(filter), format);
    else printGroups(email, store.totalsBy('model', filter), store.totalsBy('day', filter), format);
  } catch (err) {
    // Not a database, a folder, no permission …: one line, not a stack trace.
    fail(`cannot read ${usageDb}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.replace(/ {2,}/g, ' '));
  } finally {
    store?.close();
  }
}

main();
