/**
 * Invariant checks for development and test runs, decided once at load: on
 * unless NODE_ENV=production. A state transition checks its table only when
 * this is on, so a production data path pays one constant test per
 * transition. (This is the build mode, not a feature switch: feature switches
 * are read at the edge, see shared/feature-switches.ts.)
 */
export const CHECK_INVARIANTS: boolean = process.env['NODE_ENV'] !== 'production';

/** A broken invariant: a bug in this code, never a peer's fault. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}
