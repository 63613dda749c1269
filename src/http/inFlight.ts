import type { RequestContext } from './context.js';

/**
 * The requests in flight, for a stop to wait for (and cut, past its deadline). A list that only
 * grows, each request knowing its slot, rather than a Set: with a Set, each request's whole object
 * graph (context, answer, tap, buffers) outlived young-generation collections and was promoted to
 * the old generation, where only full collections free it (measured at concurrency 50: 1,200 bytes
 * promoted per request with the Set, 375 without: a hash table in the old generation that points at
 * young requests; exactly how it kept ended ones alive was not pinned down). Here a slot is
 * overwritten as its request ends, and the list's array is replaced only when it grows.
 */
export class InFlight {
  private readonly list: (RequestContext | undefined)[] = [];
  private count = 0;

  add(ctx: RequestContext): void {
    ctx.inFlightSlot = this.count;
    this.list[this.count++] = ctx;
  }

  /** The last request moves into the freed slot; never shrinks the list (a new array to promote). */
  delete(ctx: RequestContext): void {
    const i = ctx.inFlightSlot;
    if (i === undefined || this.list[i] !== ctx) return;
    ctx.inFlightSlot = undefined;
    const last = this.list[--this.count]!;
    this.list[this.count] = undefined;
    if (last === ctx) return;
    this.list[i] = last;
    last.inFlightSlot = i;
  }

  get size(): number {
    return this.count;
  }

  /** A copy: requests may end (and leave the list) while the caller goes through them. */
  values(): RequestContext[] {
    return this.list.slice(0, this.count) as RequestContext[];
  }
}
