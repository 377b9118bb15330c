/**
 * The no-path timer: while no path can serve I/O the head queues it (Linux's
 * queue_if_no_path); this unit tracks that episode (since when, for the
 * no-path event and the noPathMs counter) and the no_path_timeout after
 * which queued and new I/O fail with ENOPATH, and says when waiting is
 * pointless anyway (every path removed, or every controller past
 * fast_io_fail_tmo, as Linux's nvme_available_path).
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { PathEntry } from './types.ts';

export type NoPathReason = 'timeout' | 'all-paths-removed' | 'failfast';

/** What the timer needs from its head. */
export interface NoPathHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: { readonly noPathTimeoutMs: number | null };
  /** A no-path episode began: log and emit 'no-path'. */
  noPath(): void;
  kick(): void;
}

export class NoPathTimer {
  readonly #host: NoPathHost;
  #since: number | null = null;
  #timer: TimerHandle | null = null;
  #expired = false;
  /** Time in closed episodes, ms. */
  #doneMs = 0;

  constructor(host: NoPathHost) {
    this.#host = host;
  }

  /** An episode is open (the fast path stays off meanwhile). */
  get open(): boolean {
    return this.#since !== null;
  }

  /** ms since the episode began, or null. */
  forMs(now: number): number | null {
    return this.#since === null ? null : now - this.#since;
  }

  /** Total time without a usable path, the open episode included. */
  totalMs(now: number): number {
    return this.#doneMs + (this.#since === null ? 0 : now - this.#since);
  }

  /** Open or close the episode as `serving` says; then whether the waiting I/O should fail now, and why. */
  update(serving: boolean, entries: readonly PathEntry[]): NoPathReason | null {
    const h = this.#host;
    if (!serving && this.#since === null) {
      this.#since = h.clock.now();
      this.#expired = false;
      this.#arm();
      h.noPath();
    } else if (serving && this.#since !== null) {
      const waited = h.clock.now() - this.#since;
      this.close();
      h.log.info({ event: 'path-back', noPathMs: waited }, 'usable path back: resuming queued I/O');
    }
    if (entries.length === 0) return 'all-paths-removed';
    if (this.#expired && !serving) return 'timeout';
    // Linux's nvme_available_path: a controller past fast_io_fail_tmo is no path to wait for.
    if (!serving && entries.every((e) => e.path.failfastExpired === true)) return 'failfast';
    return null;
  }

  /** no_path_timeout changed: count it again from the episode's start. */
  rearm(): void {
    if (this.#since !== null) this.#arm();
  }

  /** End the episode (a path is back, or the head closed). */
  close(): void {
    const h = this.#host;
    if (this.#since !== null) this.#doneMs += h.clock.now() - this.#since;
    this.#since = null;
    this.#expired = false;
    if (this.#timer !== null) h.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    const h = this.#host;
    if (this.#timer !== null) h.clock.clearTimeout(this.#timer);
    this.#timer = null;
    const timeoutMs = h.settings.noPathTimeoutMs;
    if (timeoutMs === null || this.#since === null) return;
    const left = Math.max(0, this.#since + timeoutMs - h.clock.now());
    this.#timer = h.clock.setTimeout(() => {
      this.#timer = null;
      this.#expired = true;
      h.log.warn({ noPathTimeoutMs: h.settings.noPathTimeoutMs }, 'no_path_timeout passed: failing queued I/O');
      h.kick();
    }, left);
  }
}
