/**
 * Errors the multipath head hands to its callers. Each carries a stable string
 * `code` (undici/ws style) so callers switch on it, never on message text.
 */
import { describeStatus } from '../../shared/status.ts';

export type MultipathErrorCode =
  /** A bad argument (not an integer, empty, misaligned buffer...). Nothing was submitted. */
  | 'EINVAL'
  /** An LBA range outside the namespace. Nothing was submitted. */
  | 'ERANGE'
  /** No usable path: no_path_timeout passed, or every path was removed. */
  | 'ENOPATH'
  /** The command completed with an NVMe error status (see `status`). */
  | 'EIO'
  /** The head was closed before the I/O could complete. */
  | 'ECLOSED'
  /** Registry: the path's namespace ids disagree with the head it would join. */
  | 'EIDMISMATCH'
  /** Registry: the path's geometry (block size) disagrees with the head. */
  | 'EGEOMETRY'
  /** Registry: the same Path object was added twice. */
  | 'EEXIST';

export class MultipathError extends Error {
  readonly code: MultipathErrorCode;
  constructor(code: MultipathErrorCode, message: string) {
    super(message);
    this.name = 'MultipathError';
    this.code = code;
  }
}

/** The I/O ended with an NVMe status the head does not retry (DNR, retries used up, or a non-retryable path error). */
export class NvmeStatusError extends MultipathError {
  /** The 15-bit status as in shared/status.ts (SC, SCT, CRD, More, DNR). */
  readonly status: number;
  /** The path the final completion came from. */
  readonly path: string;
  constructor(status: number, path: string, what: string, retries: number) {
    super('EIO', `${what} failed on ${path}: ${describeStatus(status)}${retries > 0 ? ` after ${retries} retr${retries === 1 ? 'y' : 'ies'}` : ''}`);
    this.name = 'NvmeStatusError';
    this.status = status;
    this.path = path;
  }
}

/** Queued I/O given up because no path could serve it. */
export class NoPathError extends MultipathError {
  /** How long this I/O waited for a path, ms. */
  readonly waitedMs: number;
  readonly reason: 'timeout' | 'all-paths-removed' | 'failfast';
  constructor(head: string, reason: 'timeout' | 'all-paths-removed' | 'failfast', waitedMs: number, detail: string) {
    const why =
      reason === 'timeout'
        ? `no usable path within no_path_timeout (${detail})`
        : reason === 'failfast'
          ? `every path's controller has been reconnecting longer than fast_io_fail_tmo (${detail})`
          : `every path was removed (${detail})`;
    super('ENOPATH', `${head}: I/O failed after waiting ${Math.round(waitedMs)} ms for a path: ${why}`);
    this.name = 'NoPathError';
    this.waitedMs = waitedMs;
    this.reason = reason;
  }
}
