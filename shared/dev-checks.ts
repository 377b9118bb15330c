/**
 * Whether cheap internal invariants (a request's state transitions, per-state
 * list membership) are asserted. Decided once, here at the edge, from the
 * environment: on under vitest and NODE_ENV development/test, off otherwise,
 * so production and the benchmark pay one constant branch and nothing more.
 */
const env = typeof process === 'undefined' ? {} : process.env;

export const DEV_CHECKS: boolean = env['VITEST'] !== undefined || env['NODE_ENV'] === 'development' || env['NODE_ENV'] === 'test';

/** A broken invariant: a bug in this code, never a peer's fault. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}
