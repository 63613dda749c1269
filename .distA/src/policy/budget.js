const dayOf = (t) => new Date(t).toISOString().slice(0, 10);
export class BudgetTracker {
    now;
    spent = new Map();
    reserved = new Map();
    day;
    month;
    constructor(initial, now = Date.now) {
        this.now = now;
        for (const [id, s] of initial)
            this.spent.set(id, { ...s });
        this.day = dayOf(this.now());
        this.month = this.day.slice(0, 7);
    }
    /** The spend of the current day and month; windows roll over at UTC midnight. */
    current(id) {
        const today = dayOf(this.now());
        if (today !== this.day) {
            const newMonth = today.slice(0, 7) !== this.month;
            for (const s of this.spent.values()) {
                s.day = 0;
                if (newMonth)
                    s.month = 0;
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
    reserve(id, limits, estimateNano) {
        if (limits.daily === undefined && limits.monthly === undefined && limits.total === undefined)
            return undefined;
        const s = this.current(id);
        const held = this.reserved.get(id) ?? 0;
        const checks = [
            ['daily', limits.daily, s.day],
            ['monthly', limits.monthly, s.month],
            ['total', limits.total, s.total],
        ];
        for (const [window, limit, spent] of checks) {
            if (limit === undefined)
                continue;
            if (spent + held >= limit)
                return { window, limit, spent };
            // Too little room left to cover this request: it may still run, but only alone, so that
            // estimates that fall short can overshoot by one request and never by several.
            if (held > 0 && spent + held + estimateNano > limit)
                return { window, limit, spent };
        }
        this.reserved.set(id, held + estimateNano);
        return undefined;
    }
    /** The request ended: its reservation is released and its real cost counted. */
    settle(id, reservedNano, costNano) {
        const held = (this.reserved.get(id) ?? 0) - reservedNano;
        if (held > 0)
            this.reserved.set(id, held);
        else
            this.reserved.delete(id);
        const s = this.current(id);
        s.day += costNano;
        s.month += costNano;
        s.total += costNano;
    }
    spendOf(id) {
        return { ...this.current(id) };
    }
}
//# sourceMappingURL=budget.js.map