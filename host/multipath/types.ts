/**
 * The multipath head's types: the public ones (options, identity, events,
 * counters, snapshots) and the records its units share (a path entry, a
 * request, a write fence). Kept apart from the units so each of them can
 * name these without importing another unit.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { AnaStateName } from '../../shared/log-pages.ts';
import type { IoRequest, NamespaceIds, Path } from '../path.ts';
import type { Candidate, IoPolicy } from './selector.ts';

/** Default time a path stays out of selection after an I/O failed on it, if it emits no 'change' meanwhile. */
export const DEFAULT_SUSPECT_TIMEOUT_MS = 1000;

export interface HeadOptions {
  /** I/O policy; default 'queue-depth'. */
  readonly policy?: IoPolicy;
  /** Retries of a command on the same path for non-path errors (Linux's nvme_core max_retries); default 5. */
  readonly maxRetries?: number;
  /**
   * How long I/O is queued while no path is usable, ms, counted from the moment
   * the head lost its last usable path; then queued and new I/O fails with
   * ENOPATH until a path comes back. Default null: queue as long as any path
   * may come back, i.e. until every path is removed (Linux queue_if_no_path).
   */
  readonly noPathTimeoutMs?: number | null;
  /**
   * Anti-flap (the seed's failover_interval), ms: a path I/O was failed away
   * from less than this long ago is not chosen unless it is the only usable
   * one. Default 0 (off); the seed used 60 000.
   */
  readonly failoverIntervalMs?: number;
  /** NUMA node of the submitter, for the numa policy; default 0. */
  readonly numaNode?: number;
  /**
   * A path on which an I/O just failed (path error or path status) is left out
   * of selection until it emits 'change' (state or ANA re-read), or at the
   * latest for this long, ms (a one-shot timer per path, so a Path that does
   * not report a change is retried eventually). Default 1000.
   */
  readonly suspectTimeoutMs?: number;
  /** Split reads, writes and compares larger than this into several commands; default 0 (the path splits). */
  readonly maxTransferBytes?: number;
  /** pino logger; silent by default. */
  readonly logger?: Logger;
  /** Every timer and time read of the head (suspect hold-out, no_path_timeout, anti-flap, durations); default real time. */
  readonly clock?: Clock;
}

export interface HeadIdentity {
  /** Block device style name, e.g. "nvme0n1". */
  readonly name: string;
  readonly subnqn: string;
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  readonly nblocks: number;
}

export interface PathDownEvent {
  readonly path: string;
  readonly reason: string;
}
export interface PathUpEvent {
  readonly path: string;
  readonly reason: string;
}
export interface FailoverStartEvent {
  readonly from: string;
  readonly reason: string;
}
export interface FailoverEndEvent {
  readonly from: string;
  readonly to: string;
  readonly durationMs: number;
}
export interface NoPathEvent {
  /** I/O waiting in the head at that moment. */
  readonly queued: number;
  readonly paths: readonly string[];
}

export interface HeadEvents {
  'path-up': [PathUpEvent];
  'path-down': [PathDownEvent];
  'failover-start': [FailoverStartEvent];
  'failover-end': [FailoverEndEvent];
  'no-path': [NoPathEvent];
}

export interface HeadCounters {
  /** I/O submitted by callers (after argument checks; a split I/O counts each command). */
  ios: number;
  bytesRead: number;
  bytesWritten: number;
  /** Failover episodes ('failover-start' events). */
  failovers: number;
  /** Same-path retries of non-path errors. */
  retries: number;
  /** I/O completed to the caller with an error. */
  errors: number;
  /** I/O sent back to the requeue list by a path failure (one per command per failure). */
  requeues: number;
  /** Writes that had to wait for a fence before being resent. */
  fencedWrites: number;
  /** Set Namespace Active (0xFE) commands sent. */
  activations: number;
  /** Total time with no usable path, ms (the current episode included). */
  noPathMs: number;
}

export interface PathSnapshot {
  readonly name: string;
  readonly address: string;
  readonly cntlid: number;
  readonly nsid: number;
  /** Controller state: live, connecting, resetting, deleting... */
  readonly state: string;
  readonly ana: AnaStateName | `unknown(${number})`;
  /** Active-standby: is this the active path. */
  readonly active: boolean;
  /** Can take I/O now (live, ANA accessible, not held out). */
  readonly usable: boolean;
  /** Why the head holds this path out of selection after a failure, or null. */
  readonly suspect: string | null;
  /** I/O this head has outstanding on the path. */
  readonly inflight: number;
  /** The path's own count (all submitters). */
  readonly pathInflight: number;
  /** I/O sent on this path by the head (including retries). */
  readonly ios: number;
  /** Outcomes on this path that were not a success (path errors, error statuses). */
  readonly errors: number;
  /** ms since I/O was last failed away from this path, or null. */
  readonly demotedAgoMs: number | null;
}

export interface HeadSnapshot {
  readonly name: string;
  readonly subnqn: string;
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  readonly nblocks: number;
  readonly policy: IoPolicy;
  readonly closed: boolean;
  /** Active-standby: the active path and the one being activated. */
  readonly activePath: string | null;
  readonly activating: string | null;
  /** Some path can serve I/O (or a failover to one is under way). */
  readonly usable: boolean;
  /** ms since the head lost its last usable path, or null. */
  readonly noPathForMs: number | null;
  readonly failover: { readonly from: string; readonly sinceMs: number } | null;
  /** I/O waiting in the requeue list, of which writes waiting for a fence. */
  readonly queued: number;
  readonly fenced: number;
  readonly inflight: number;
  readonly options: {
    readonly maxRetries: number;
    readonly noPathTimeoutMs: number | null;
    readonly failoverIntervalMs: number;
    readonly numaNode: number;
    readonly suspectTimeoutMs: number;
    readonly maxTransferBytes: number;
  };
  readonly counters: Readonly<HeadCounters>;
  readonly paths: readonly PathSnapshot[];
}

// ---------------------------------------------------------------- shared by the head's units

/** What the head is in the middle of: plain fields the fast path reads on every I/O (no call). */
export interface HeadPhase {
  /** Inside #kick(). */
  kicking: boolean;
  /** A failover episode is open. */
  failingOver: boolean;
  closed: boolean;
}

export interface PathEntry extends Candidate {
  readonly path: Path;
  readonly order: number;
  readonly name: string;
  inflight: number;
  excluded: boolean;
  demotedAt: number | null;
  suspect: string | null;
  suspectTimer: TimerHandle | null;
  removed: boolean;
  /** Last computed up/down, for path-up / path-down events. */
  up: boolean;
  /** Active-standby: ANA state when setActive completed; null once the target reported since. */
  anaAtActivation: number | null;
  /**
   * Active-standby: this was our active path until the target reported it
   * inaccessible (another path was made active: by another host, the array's
   * administrator, a test). Not taken back while another path could be made
   * active instead. Cleared when we next activate a path: an ANA log read
   * that says 'optimized' may have been executed before the move and answered
   * after the I/O that reported it (admin and I/O queues are not ordered).
   */
  takenOver: boolean;
  ios: number;
  errors: number;
  readonly onChange: () => void;
  readonly onRemoved: () => void;
}

export interface Fence {
  readonly from: PathEntry;
  /** The write was sent on the active path under active-standby: a later 0xFE elsewhere fences it. */
  readonly viaActivation: boolean;
  readonly dispatchEpoch: number;
  quiesced: boolean;
}

export type ReqState = 'queued' | 'inflight' | 'done';

/** An unfinished write-like I/O, for per-block ordering (a Req, or a fast-path write's record). */
export interface WriteRec {
  readonly seq: number;
  readonly io: IoRequest;
}

export interface Req extends WriteRec {
  readonly writeLike: boolean;
  readonly submittedAt: number;
  state: ReqState;
  retries: number;
  requeues: number;
  /** Same-path retry target. */
  retryOn: PathEntry | null;
  fence: Fence | null;
  dispatchEpoch: number;
  activeAtDispatch: boolean;
  readonly resolve: (data: Buffer | undefined) => void;
  readonly reject: (err: Error) => void;
}
