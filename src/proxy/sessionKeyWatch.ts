import type { RequestContext } from '../http/context.js';
import type { KeyRing } from '../keys/keyRing.js';
import type { KeyRecord } from '../keys/types.js';

/** How often open sessions' keys are looked up again. */
const RECHECK_MS = 5_000;

/**
 * Open Realtime sessions, checked again every few seconds against the keys as they are now. An
 * HTTP request is checked once, at its start, and ends soon; a WebSocket may stay open as long as
 * OpenAI allows (an hour). A key removed from keys.json, disabled, expired or no longer granted
 * `realtime` must not keep one going: its sessions are cut, each leaving its row with the reason.
 */
export class SessionKeyWatch {
  private readonly open = new Set<RequestContext>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly keys: KeyRing,
    private readonly everyMs = RECHECK_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A session that has started (ctx.principal and ctx.cut set). */
  add(ctx: RequestContext): void {
    this.open.add(ctx);
    this.timer ??= setInterval(() => this.check(), this.everyMs).unref();
  }

  /** The session has ended. */
  delete(ctx: RequestContext): void {
    this.open.delete(ctx);
    this.stopIfIdle();
  }

  check(): void {
    for (const ctx of this.open) {
      const why = revoked(this.keys, ctx.principal!, this.now());
      if (why === undefined) continue;
      ctx.outcome ??= 'stream_broken';
      ctx.error ??= why;
      this.open.delete(ctx);
      ctx.cut?.();
    }
    this.stopIfIdle();
  }

  /** No timer while no session is open (nothing to check, and nothing to keep alive). */
  private stopIfIdle(): void {
    if (this.open.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Why a key that was valid at a session's start may no longer hold it open. */
function revoked(keys: KeyRing, was: KeyRecord, now: number): string | undefined {
  const record = keys.lookup(was.digest);
  if (record === undefined) return 'the key was removed';
  if (record.disabled) return 'the key was disabled';
  if (record.expiresAt !== undefined && record.expiresAt <= now) return 'the key expired';
  if (!record.policy.families.has('realtime')) return 'the key may no longer use realtime';
  return undefined;
}
