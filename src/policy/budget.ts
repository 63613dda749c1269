/**
 * Spend per key against daily, monthly (UTC) and total budgets, in nano-dollars. Spent amounts start
 * from the usage store (so they survive a restart) and grow with every row; requests in flight hold a
 * reservation of their estimated cost, so fifty requests fired at once cannot all slip under a limit.
 */
import { isoTime } from '../util/isoTime.js';

export interface Spend {
  day: number;
  month: number;
  total: number;
}

export interface BudgetLimits {
  daily?: number;
  monthly?: number;
  total?: number;
}

export interface BudgetRefusal {
  window: 'daily' | 'monthly' | 'total';
  limit: number;
  spent: number;
}

const dayOf = (t: number) => isoTime(t).slice(0, 10);

export class BudgetTracker {
  private readonly spent = new Map<string, Spend>();
  private readonly reserved = new Map<string, number>();
  private day: string;
  private month: string;

  constructor(
    initial: Iterable<[string, Spend]>,
    private readonly now: () => number = Date.now,
  ) {
    for (const [id, s] of initial) this.spent.set(id, { ...s });
    this.day = dayOf(this.now());
    this.month = this.day.slice(0, 7);
  }

  /** The spend of the current day and month; windows roll over at UTC midnight. */
  private current(id: string): Spend {
    const today = dayOf(this.now());
    if (today !== this.day) {
      const newMonth = today.slice(0, 7) !== this.month;
      for (const s of this.spent.values()) {
        s.day = 0;
        if (newMonth) s.month = 0;
      }
      this.day = today;
      this.month = today.slice(0, 7);
    }
    let s = this.spent.get(id);
    if (!s) {
      s = { day: 0, month: 0, total: 0 };
      this.spent.set(id, s);
    }
    return s;
  }

  /**
   * Admits a request if every window has room for its estimate beside what is already reserved; when
   * the room left is smaller than the estimate, only if nothing else of this key is in flight. So a
   * budget is passed by at most one request, the last one, even when estimates fall short.
   */
  reserve(id: string, limits: BudgetLimits, estimateNano: number): BudgetRefusal | undefined {
    if (limits.daily === undefined && limits.monthly === undefined && limits.total === undefined) return undefined;
    const s = this.current(id);
    const held = this.reserved.get(id) ?? 0;
    const checks: [BudgetRefusal['window'], number | undefined, number][] = [
      ['daily', limits.daily, s.day],
      ['monthly', limits.monthly, s.month],
      ['total', limits.total, s.total],
    ];
    for (const [window, limit, spent] of checks) {
      if (limit === undefined) continue;
      if (spent + held >= limit) return { window, limit, spent };
      // Too little room left to cover this request: it may still run, but only alone, so that
      // estimates that fall short can overshoot by one request and never by several.
      if (held > 0 && spent + held + estimateNano > limit) return { window, limit, spent };
    }
    this.reserved.set(id, held + estimateNano);
    return undefined;
  }

  /** The request ended: its reservation is released and its real cost counted. */
  settle(id: string, reservedNano: number, costNano: number): void {
    const held = (this.reserved.get(id) ?? 0) - reservedNano;
    if (held > 0) this.reserved.set(id, held);
    else this.reserved.delete(id);
    const s = this.current(id);
    s.day += costNano;
    s.month += costNano;
    s.total += costNano;
  }

  spendOf(id: string): Spend {
    return { ...this.current(id) };
  }
}
