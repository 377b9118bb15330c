/**
 * Time, behind one replaceable object (as undici's timers module): every timer
 * and clock read in host/ goes through `timers`, so tests can install a fake
 * clock and drive keep-alive, reconnect delay and timeouts without sleeping.
 *
 * Real timers are unref'd: a host object never keeps the process alive by a
 * timer alone (its sockets do that while they are open).
 */

/** Opaque: whatever the installed setTimeout returned. */
export type TimerHandle = unknown;

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | null | undefined): void;
  /** Monotonic milliseconds. */
  now(): number;
}

export const realTimers: Timers = {
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
};

let current: Timers = realTimers;

/** The timers in force. Call through this object, never cache its methods. */
export const timers: Timers = {
  setTimeout: (fn, ms) => current.setTimeout(fn, ms),
  clearTimeout: (h) => current.clearTimeout(h),
  now: () => current.now(),
};

/** Replace the timers (tests); returns a function that restores the previous ones. */
export function installTimers(t: Timers): () => void {
  const prev = current;
  current = t;
  return () => {
    current = prev;
  };
}

/** Resolves after ms on the timers in force. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    timers.setTimeout(resolve, ms);
  });
}
