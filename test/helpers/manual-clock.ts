/**
 * A Clock that moves only when a test says so: timers fire in deadline order
 * (ties in the order they were set) as `advance` passes their deadline, with
 * microtasks drained between them so promise chains a timer starts run before
 * the next timer fires.
 */
import type { Clock, TimerHandle } from '../../shared/clock.ts';

interface PendingTimer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

export class ManualClock implements Clock {
  #now = 0;
  readonly #epoch: number;
  #nextId = 1;
  #timers: PendingTimer[] = [];

  constructor(startWallMs = Date.UTC(2026, 0, 1)) {
    this.#epoch = startWallMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { id: this.#nextId++, due: this.#now + Math.max(0, ms), fn };
    this.#timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: TimerHandle | null | undefined): void {
    if (handle === null || handle === undefined) return;
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#epoch + this.#now;
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Move time forward by ms, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#earliest();
      if (!next || next.due > end) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = next.due;
      next.fn();
      await drainMicrotasks();
    }
    this.#now = end;
    await drainMicrotasks();
  }

  #earliest(): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const t of this.#timers) if (!best || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    return best;
  }
}

async function drainMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
