/**
 * The head's tunables, checked once and held in one mutable record that the
 * head and its units read (setOptions changes them in place, so no unit keeps
 * a stale copy).
 */
import { DEFAULT_MAX_RETRIES } from './disposition.ts';
import { MultipathError } from './errors.ts';
import { DEFAULT_IO_POLICY, IO_POLICIES, isIoPolicy, type IoPolicy } from './selector.ts';
import { DEFAULT_SUSPECT_TIMEOUT_MS, type HeadOptions } from './types.ts';

export interface HeadSettings {
  policy: IoPolicy;
  maxRetries: number;
  noPathTimeoutMs: number | null;
  failoverIntervalMs: number;
  numaNode: number;
  suspectTimeoutMs: number;
  readonly maxTransferBytes: number;
}

export type RuntimeOptions = Pick<HeadOptions, 'maxRetries' | 'noPathTimeoutMs' | 'failoverIntervalMs' | 'numaNode' | 'suspectTimeoutMs'>;

export function nonNegInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new MultipathError('EINVAL', `${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

export function checkPolicy(policy: unknown): IoPolicy {
  if (!isIoPolicy(policy)) throw new MultipathError('EINVAL', `unknown I/O policy "${String(policy)}" (one of ${IO_POLICIES.join(', ')})`);
  return policy;
}

export function resolveSettings(options: HeadOptions, blockSize: number): HeadSettings {
  const s: HeadSettings = {
    policy: checkPolicy(options.policy ?? DEFAULT_IO_POLICY),
    maxRetries: nonNegInt('maxRetries', options.maxRetries ?? DEFAULT_MAX_RETRIES),
    noPathTimeoutMs: options.noPathTimeoutMs == null ? null : nonNegInt('noPathTimeoutMs', options.noPathTimeoutMs),
    failoverIntervalMs: nonNegInt('failoverIntervalMs', options.failoverIntervalMs ?? 0),
    numaNode: nonNegInt('numaNode', options.numaNode ?? 0),
    suspectTimeoutMs: nonNegInt('suspectTimeoutMs', options.suspectTimeoutMs ?? DEFAULT_SUSPECT_TIMEOUT_MS),
    maxTransferBytes: nonNegInt('maxTransferBytes', options.maxTransferBytes ?? 0),
  };
  if (s.maxTransferBytes > 0 && s.maxTransferBytes < blockSize) {
    throw new MultipathError('EINVAL', `maxTransferBytes ${s.maxTransferBytes} is smaller than the block size ${blockSize}`);
  }
  return s;
}

/** Apply run-time changes; returns whether noPathTimeoutMs was among them. */
export function applyRuntimeOptions(s: HeadSettings, opts: RuntimeOptions): boolean {
  if (opts.maxRetries !== undefined) s.maxRetries = nonNegInt('maxRetries', opts.maxRetries);
  if (opts.failoverIntervalMs !== undefined) s.failoverIntervalMs = nonNegInt('failoverIntervalMs', opts.failoverIntervalMs);
  if (opts.numaNode !== undefined) s.numaNode = nonNegInt('numaNode', opts.numaNode);
  if (opts.suspectTimeoutMs !== undefined) s.suspectTimeoutMs = nonNegInt('suspectTimeoutMs', opts.suspectTimeoutMs);
  if (opts.noPathTimeoutMs === undefined) return false;
  s.noPathTimeoutMs = opts.noPathTimeoutMs === null ? null : nonNegInt('noPathTimeoutMs', opts.noPathTimeoutMs);
  return true;
}
