/**
 * What to do with one path outcome: complete it to the caller, retry it on the
 * same path, or fail it over to another path. Decided from the outcome alone,
 * as Linux's nvme_decide_disposition does from the status word alone.
 */
import type { PathOutcome } from '../path.ts';
import { isAnaError, isDnr, isPathError } from '../../shared/status.ts';

export type Disposition = 'complete' | 'retry' | 'failover';

/** Linux's nvme_max_retries default. */
export const DEFAULT_MAX_RETRIES = 5;

/**
 * - success: complete;
 * - no completion from the path (transport error, timeout, reset, deletion): failover;
 * - DNR set, or the retry budget used: complete (the error reaches the caller);
 * - a path status (SCT 3: ANA, host/controller pathing errors): failover;
 * - any other status: retry on the same path.
 *
 * Failovers do not use the retry budget (as in Linux, where nvme_failover_req
 * does not count): a path error says nothing about the command itself.
 */
export function decideDisposition(outcome: PathOutcome, retries: number, maxRetries: number): Disposition {
  if (outcome.kind === 'path-error') return 'failover';
  const { status } = outcome;
  if (status === 0) return 'complete';
  if (isDnr(status) || retries >= maxRetries) return 'complete';
  if (isPathError(status)) return 'failover';
  return 'retry';
}

/**
 * Whether a failed-over command may have changed the medium on the old path,
 * so that resending a write elsewhere must wait for the old path to be fenced.
 * ANA statuses are returned by the target without executing the command; any
 * other path-level failure (lost completion, host/controller pathing error,
 * host abort) may hide an execution.
 */
export function mayHaveExecuted(outcome: PathOutcome): boolean {
  if (outcome.kind === 'path-error') return outcome.mayHaveExecuted;
  return !isAnaError(outcome.status);
}
