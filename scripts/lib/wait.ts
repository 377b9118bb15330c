/**
 * The one polling wait of the tests and scripts: for a condition that no
 * event announces (a count in a snapshot, a controller's state, an answer
 * from another process). Where an event exists, wait for the event instead.
 * Tests import it as test/helpers/wait.ts; it lives here because scripts/
 * import no test code.
 */

/** What `cond` returns once it holds. */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Calls `cond` (and awaits it) until it returns a truthy value, and resolves
 * with that value. `cond` is called at once, then every `everyMs` (after the
 * previous call settled, so a slow check never overlaps itself); once
 * `timeoutMs` has passed without success it rejects with "timed out after
 * <timeoutMs> ms waiting for <what>". An exception from `cond` rejects at once.
 */
export async function waitFor<T>(cond: () => T | Promise<T>, what: string, timeoutMs = 3000, everyMs = 5): Promise<Truthy<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as Truthy<T>;
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
