/**
 * Time, behind one interface (as undici's timers module). Every timer and
 * clock read in host/ and target/ goes through a Clock that is handed in, so
 * tests can drive keep-alive, reconnect delay, stall and setup timeouts with
 * a manual clock instead of sleeping.
 *
 * Real timers are unref'd: a timer alone never keeps the process alive (the
 * sockets do that while they are open).
 */

/** Opaque: whatever the clock's setTimeout returned. */
export type TimerHandle = unknown;

export interface Clock {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | null | undefined): void;
  /** Monotonic milliseconds (for intervals and deadlines). */
  now(): number;
  /** Wall-clock milliseconds since the epoch (for timestamps a person or a peer reads). */
  wallNow(): number;
}

export const realClock: Clock = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    if (handle) clearTimeout(handle as NodeJS.Timeout);
  },
  now() {
    return performance.now();
  },
  wallNow() {
    return Date.now();
  },
};

/** Resolves after ms on the given clock. */
export function sleepOn(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimeout(resolve, ms);
  });
}
