/**
 * The multipath head: one namespace seen through many paths (one per
 * controller). It takes block I/O from callers, sends each command down one
 * path chosen by the I/O policy, and decides on every outcome whether to
 * complete it, retry it on the same path, or fail it over (disposition.ts).
 *
 * Requeue list: a command that cannot go anywhere right now (no usable path,
 * failover under way, fenced write, or an earlier overlapping write still
 * unfinished) waits in `#pending`, kept in submission order. The list is
 * drained by `#kick()`, which runs on events only (a path's 'change' or
 * 'removed', a path joining, a setActive completion, a fence lifting, an I/O
 * ending, a policy change): never a polling loop.
 *
 * Write fencing: a write that failed over from a path where it may have
 * executed (a lost completion, not an ANA rejection) is not resent until it
 * can no longer land late on the old path: after the old path's quiesced()
 * resolves or, when it was sent on the active path under active-standby,
 * after a Set Namespace Active (0xFE) on another path succeeded (the target
 * fences the old path before completing 0xFE). Writes to overlapping LBA
 * ranges are kept in submission order (a write waits for every earlier
 * unfinished write it overlaps), so a fenced write also holds back later
 * writes to its blocks: no stale data can overtake newer data.
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import type { IoKind, IoRequest, NamespaceIds, Path, PathOutcome } from '../path.ts';
import { AnaState, anaStateName, isAnaState, type AnaStateName } from '../../shared/log-pages.ts';
import { Status, describeStatus } from '../../shared/status.ts';
import { DEFAULT_MAX_RETRIES, decideDisposition, mayHaveExecuted } from './disposition.ts';
import { MultipathError, NoPathError, NvmeStatusError } from './errors.ts';
import { checkJoin } from './ids.ts';
import {
  DEFAULT_IO_POLICY,
  IO_POLICIES,
  isAnaAccessible,
  isIoPolicy,
  isUsableForIo,
  selectActivationCandidate,
  selectPath,
  type Candidate,
  type IoPolicy,
  type SelectContext,
} from './selector.ts';

const silentLogger: Logger = pino({ level: 'silent' });

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

interface PathEntry extends Candidate {
  readonly path: Path;
  readonly order: number;
  readonly name: string;
  inflight: number;
  excluded: boolean;
  demotedAt: number | null;
  suspect: string | null;
  suspectTimer: ReturnType<typeof setTimeout> | null;
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

interface Fence {
  readonly from: PathEntry;
  /** The write was sent on the active path under active-standby: a later 0xFE elsewhere fences it. */
  readonly viaActivation: boolean;
  readonly dispatchEpoch: number;
  quiesced: boolean;
}

type ReqState = 'queued' | 'inflight' | 'done';

/** An unfinished write-like I/O, for per-block ordering (a Req, or a fast-path write's record). */
interface WriteRec {
  readonly seq: number;
  readonly io: IoRequest;
}

interface Req extends WriteRec {
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

const WRITE_LIKE: ReadonlySet<IoKind> = new Set<IoKind>(['write', 'write-zeroes', 'deallocate']);

function overlaps(a: IoRequest, b: IoRequest): boolean {
  return a.nlb > 0 && b.nlb > 0 && a.slba < b.slba + b.nlb && b.slba < a.slba + a.nlb;
}

function anaName(state: number): AnaStateName | `unknown(${number})` {
  return isAnaState(state) ? anaStateName(state) : `unknown(${state})`;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function nonNegInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new MultipathError('EINVAL', `${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

export class MultipathHead extends EventEmitter<HeadEvents> {
  readonly name: string;
  readonly subnqn: string;
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  #nblocks: number;

  #policy: IoPolicy;
  #maxRetries: number;
  #noPathTimeoutMs: number | null;
  #failoverIntervalMs: number;
  #numaNode: number;
  #suspectTimeoutMs: number;
  #maxTransferBytes: number;
  readonly #log: Logger;

  #entries: PathEntry[] = [];
  #nextOrder = 0;
  #seq = 0;
  /** The requeue list: queued I/O in submission order. */
  #pending: Req[] = [];
  #inflight = new Set<Req>();
  /**
   * Write-like I/O not yet completed to the caller (per-block ordering): slow-path
   * Reqs and fast-path records. Order does not matter (the check compares seq).
   */
  #unfinishedWrites = new Set<WriteRec>();
  /** I/O in flight through the fast path (no Req; counted for close() and state()). */
  #fastInflight = 0;
  /**
   * Load-sharing policies with several paths: the usable paths of the best ANA
   * tier in join order, for the fast path; null = recompute. Reset on every
   * #kick(), which runs on every path 'change'/'removed', path join, suspect
   * change, policy change and slow-path outcome.
   */
  #pool: PathEntry[] | null = null;

  // active-standby
  #active: PathEntry | null = null;
  #activating: PathEntry | null = null;
  /** A candidate will be chosen in a microtask. */
  #activationPending = false;
  #activationEpoch = 0;
  /** Latest successful activation epoch per path (kept after removal: fencing history). */
  #activations = new Map<Path, number>();

  #lastRoundRobin: Path | null = null;
  #failover: { from: string; startedAt: number } | null = null;
  #noPathSince: number | null = null;
  #noPathTimer: ReturnType<typeof setTimeout> | null = null;
  #noPathExpired = false;
  #noPathMsDone = 0;

  #kicking = false;
  #kickAgain = false;
  #closed = false;
  #closeWaiters: (() => void)[] = [];

  readonly #counters: HeadCounters = {
    ios: 0,
    bytesRead: 0,
    bytesWritten: 0,
    failovers: 0,
    retries: 0,
    errors: 0,
    requeues: 0,
    fencedWrites: 0,
    activations: 0,
    noPathMs: 0,
  };

  constructor(identity: HeadIdentity, options: HeadOptions = {}) {
    super();
    this.name = identity.name;
    this.subnqn = identity.subnqn;
    this.nsid = identity.nsid;
    this.ids = { ...identity.ids };
    this.blockSize = identity.blockSize;
    this.#nblocks = identity.nblocks;
    const policy = options.policy ?? DEFAULT_IO_POLICY;
    if (!isIoPolicy(policy)) throw new MultipathError('EINVAL', `unknown I/O policy "${String(policy)}" (one of ${IO_POLICIES.join(', ')})`);
    this.#policy = policy;
    this.#maxRetries = nonNegInt('maxRetries', options.maxRetries ?? DEFAULT_MAX_RETRIES);
    this.#noPathTimeoutMs = options.noPathTimeoutMs == null ? null : nonNegInt('noPathTimeoutMs', options.noPathTimeoutMs);
    this.#failoverIntervalMs = nonNegInt('failoverIntervalMs', options.failoverIntervalMs ?? 0);
    this.#numaNode = nonNegInt('numaNode', options.numaNode ?? 0);
    this.#suspectTimeoutMs = nonNegInt('suspectTimeoutMs', options.suspectTimeoutMs ?? DEFAULT_SUSPECT_TIMEOUT_MS);
    this.#maxTransferBytes = nonNegInt('maxTransferBytes', options.maxTransferBytes ?? 0);
    if (this.#maxTransferBytes > 0 && this.#maxTransferBytes < this.blockSize) {
      throw new MultipathError('EINVAL', `maxTransferBytes ${this.#maxTransferBytes} is smaller than the block size ${this.blockSize}`);
    }
    this.#log = (options.logger ?? silentLogger).child({ head: this.name });
  }

  // ---------------------------------------------------------------- identity

  get nblocks(): number {
    return this.#nblocks;
  }
  get policy(): IoPolicy {
    return this.#policy;
  }
  get paths(): readonly Path[] {
    return this.#entries.map((e) => e.path);
  }
  get closed(): boolean {
    return this.#closed;
  }
  /** Active-standby: the active path, if any. */
  get activePath(): Path | null {
    return this.#active?.path ?? null;
  }

  // ---------------------------------------------------------------- I/O API

  /**
   * Read nlb blocks from slba. With `into` (at least nlb blocks long) the data
   * lands there and the result is its first nlb blocks, as a block device reads
   * into the caller's pages: no allocation per read. Until the promise settles
   * the buffer belongs to the read (a retry on another path writes it again).
   */
  read(slba: number, nlb: number, into?: Buffer): Promise<Buffer> {
    try {
      this.#checkRange('read', slba, nlb);
      if (into !== undefined && (!Buffer.isBuffer(into) || into.length < nlb * this.blockSize)) {
        throw new MultipathError('EINVAL', `read: the destination must be a Buffer of at least ${nlb * this.blockSize} bytes, got ${Buffer.isBuffer(into) ? into.length : typeof into}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const dest = into?.subarray(0, nlb * this.blockSize);
    const maxBlocks = this.#maxBlocks();
    if (maxBlocks > 0 && nlb > maxBlocks) {
      const parts: Promise<Buffer>[] = [];
      for (let off = 0; off < nlb; off += maxBlocks) {
        const n = Math.min(maxBlocks, nlb - off);
        parts.push(this.#submitRead(slba + off, n, dest?.subarray(off * this.blockSize, (off + n) * this.blockSize)));
      }
      return Promise.all(parts).then((bufs) => dest ?? Buffer.concat(bufs));
    }
    return this.#submitRead(slba, nlb, dest);
  }

  /** Write data (a whole number of blocks) at slba. */
  write(slba: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    let nlb: number;
    try {
      nlb = this.#checkData('write', slba, data);
    } catch (e) {
      return Promise.reject(e);
    }
    const maxBlocks = this.#maxBlocks();
    if (maxBlocks === 0 || nlb <= maxBlocks) {
      // Resolves with undefined for writes (fast and slow path alike).
      return this.#submit(opts.fua === true ? { kind: 'write', slba, nlb, data, fua: true } : { kind: 'write', slba, nlb, data }) as Promise<unknown> as Promise<void>;
    }
    return this.#splitData('write', slba, nlb, data, opts.fua === true);
  }

  /** Compare data with the medium at slba; rejects with NvmeStatusError (CompareFailure) on a miscompare. */
  async compare(slba: number, data: Buffer): Promise<void> {
    const nlb = this.#checkData('compare', slba, data);
    await this.#splitData('compare', slba, nlb, data, false);
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    await this.#submit({ kind: 'flush', slba: 0, nlb: 0 });
  }

  async writeZeroes(slba: number, nlb: number, opts: { deallocate?: boolean } = {}): Promise<void> {
    this.#checkRange('writeZeroes', slba, nlb);
    await this.#submit({ kind: 'write-zeroes', slba, nlb, deallocate: opts.deallocate === true });
  }

  async deallocate(slba: number, nlb: number): Promise<void> {
    this.#checkRange('deallocate', slba, nlb);
    await this.#submit({ kind: 'deallocate', slba, nlb });
  }

  // ---------------------------------------------------------------- control

  setPolicy(policy: IoPolicy): void {
    if (!isIoPolicy(policy)) {
      throw new MultipathError('EINVAL', `unknown I/O policy "${String(policy)}" (one of ${IO_POLICIES.join(', ')})`);
    }
    if (policy === this.#policy) return;
    const from = this.#policy;
    this.#policy = policy;
    // Leaving active-standby forgets the active path (the target keeps its ANA
    // states, which every policy follows); an activation under way still
    // counts for fencing when it completes. Entering it picks one on the kick.
    this.#active = null;
    this.#lastRoundRobin = null;
    this.#log.info({ from, to: policy }, 'I/O policy changed');
    this.#kick();
  }

  /** Change options at run time (policy has setPolicy). */
  setOptions(opts: Pick<HeadOptions, 'maxRetries' | 'noPathTimeoutMs' | 'failoverIntervalMs' | 'numaNode' | 'suspectTimeoutMs'>): void {
    if (opts.maxRetries !== undefined) this.#maxRetries = nonNegInt('maxRetries', opts.maxRetries);
    if (opts.failoverIntervalMs !== undefined) this.#failoverIntervalMs = nonNegInt('failoverIntervalMs', opts.failoverIntervalMs);
    if (opts.numaNode !== undefined) this.#numaNode = nonNegInt('numaNode', opts.numaNode);
    if (opts.suspectTimeoutMs !== undefined) this.#suspectTimeoutMs = nonNegInt('suspectTimeoutMs', opts.suspectTimeoutMs);
    if (opts.noPathTimeoutMs !== undefined) {
      this.#noPathTimeoutMs = opts.noPathTimeoutMs === null ? null : nonNegInt('noPathTimeoutMs', opts.noPathTimeoutMs);
      if (this.#noPathSince !== null) this.#armNoPathTimer();
    }
    this.#kick();
  }

  /**
   * Add a path (the registry calls this after pairing it by namespace ids).
   * Throws EIDMISMATCH / EGEOMETRY when the path does not belong here.
   */
  addPath(path: Path): void {
    this.#checkOpen();
    if (this.#entries.some((e) => e.path === path)) {
      throw new MultipathError('EEXIST', `path ${path.name} is already part of ${this.name}`);
    }
    checkJoin(this, path);
    if (path.nblocks !== this.#nblocks) {
      this.#log.warn({ path: path.name, was: this.#nblocks, now: path.nblocks }, 'namespace size changed');
      this.#nblocks = path.nblocks;
    }
    const entry: PathEntry = {
      path,
      order: this.#nextOrder++,
      name: path.name,
      inflight: 0,
      excluded: false,
      demotedAt: null,
      suspect: null,
      suspectTimer: null,
      removed: false,
      up: false,
      anaAtActivation: null,
      takenOver: false,
      ios: 0,
      errors: 0,
      onChange: () => this.#onPathChange(entry),
      onRemoved: () => this.removePath(path),
    };
    path.on('change', entry.onChange);
    path.on('removed', entry.onRemoved);
    this.#entries.push(entry);
    this.#log.info(
      { path: path.name, address: path.address, cntlid: path.cntlid, state: path.controllerState, ana: anaName(path.anaState) },
      'path joined',
    );
    this.#kick();
  }

  /** Take a path out (also done on its 'removed' event). Returns false if it was not here. */
  removePath(path: Path): boolean {
    const entry = this.#entries.find((e) => e.path === path);
    if (entry === undefined) return false;
    entry.removed = true;
    entry.excluded = true;
    this.#clearSuspect(entry);
    path.off('change', entry.onChange);
    path.off('removed', entry.onRemoved);
    this.#entries = this.#entries.filter((e) => e !== entry);
    if (entry.up) {
      entry.up = false;
      this.#pathDown(entry, 'removed');
    }
    if (this.#lastRoundRobin === path) this.#lastRoundRobin = null;
    this.#log.info({ path: path.name, remaining: this.#entries.length }, 'path removed');
    this.#kick();
    return true;
  }

  /**
   * Fail queued I/O with ECLOSED, stop listening to paths, and resolve when
   * the I/O in flight has ended (its callers get success or ECLOSED).
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#noPathTimer) clearTimeout(this.#noPathTimer);
      this.#noPathTimer = null;
      this.#closeNoPathEpisode();
      for (const e of this.#entries) {
        this.#clearSuspect(e);
        e.path.off('change', e.onChange);
        e.path.off('removed', e.onRemoved);
      }
      const queued = this.#pending;
      this.#pending = [];
      for (const req of queued) if (req.state === 'queued') this.#fail(req, this.#closedError());
      this.#log.info({ queuedFailed: queued.length, inflight: this.#inflight.size + this.#fastInflight }, 'head closed');
    }
    if (this.#inflight.size + this.#fastInflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closeWaiters.push(resolve));
  }

  state(): HeadSnapshot {
    const now = Date.now();
    const active = this.#active;
    let fenced = 0;
    for (const r of this.#pending) if (r.fence !== null && !this.#fenceLifted(r)) fenced++;
    return {
      name: this.name,
      subnqn: this.subnqn,
      nsid: this.nsid,
      ids: { ...this.ids },
      blockSize: this.blockSize,
      nblocks: this.#nblocks,
      policy: this.#policy,
      closed: this.#closed,
      activePath: active?.name ?? null,
      activating: this.#activating?.name ?? null,
      usable: this.#serving(),
      noPathForMs: this.#noPathSince === null ? null : now - this.#noPathSince,
      failover: this.#failover === null ? null : { from: this.#failover.from, sinceMs: now - this.#failover.startedAt },
      queued: this.#pending.length,
      fenced,
      inflight: this.#inflight.size + this.#fastInflight,
      options: {
        maxRetries: this.#maxRetries,
        noPathTimeoutMs: this.#noPathTimeoutMs,
        failoverIntervalMs: this.#failoverIntervalMs,
        numaNode: this.#numaNode,
        suspectTimeoutMs: this.#suspectTimeoutMs,
        maxTransferBytes: this.#maxTransferBytes,
      },
      counters: {
        ...this.#counters,
        noPathMs: this.#noPathMsDone + (this.#noPathSince === null ? 0 : now - this.#noPathSince),
      },
      paths: this.#entries.map((e) => ({
        name: e.name,
        address: e.path.address,
        cntlid: e.path.cntlid,
        nsid: e.path.nsid,
        state: e.path.controllerState,
        ana: anaName(e.path.anaState),
        active: e === active,
        usable: isUsableForIo(e),
        suspect: e.suspect,
        inflight: e.inflight,
        pathInflight: e.path.inflight,
        ios: e.ios,
        errors: e.errors,
        demotedAgoMs: e.demotedAt === null ? null : now - e.demotedAt,
      })),
    };
  }

  // ---------------------------------------------------------------- argument checks

  #checkOpen(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): MultipathError {
    return new MultipathError('ECLOSED', `${this.name} is closed`);
  }

  #checkRange(what: string, slba: unknown, nlb: unknown): void {
    this.#checkOpen();
    if (typeof slba !== 'number' || !Number.isSafeInteger(slba) || slba < 0) {
      throw new MultipathError('EINVAL', `${what}: slba must be a non-negative integer, got ${String(slba)}`);
    }
    if (typeof nlb !== 'number' || !Number.isSafeInteger(nlb) || nlb < 1) {
      throw new MultipathError('EINVAL', `${what}: the block count must be a positive integer, got ${String(nlb)}`);
    }
    if (slba + nlb > this.#nblocks) {
      throw new MultipathError(
        'ERANGE',
        `${what}: blocks ${slba}..${slba + nlb - 1} are beyond the end of ${this.name} (${this.#nblocks} blocks of ${this.blockSize} bytes)`,
      );
    }
  }

  /** Checks a data buffer and its range; returns its block count. */
  #checkData(what: string, slba: unknown, data: unknown): number {
    this.#checkOpen();
    if (!Buffer.isBuffer(data)) throw new MultipathError('EINVAL', `${what}: data must be a Buffer`);
    if (data.length === 0 || data.length % this.blockSize !== 0) {
      throw new MultipathError(
        'EINVAL',
        `${what}: data length ${data.length} is not a positive multiple of the block size ${this.blockSize} of ${this.name}`,
      );
    }
    const nlb = data.length / this.blockSize;
    this.#checkRange(what, slba, nlb);
    return nlb;
  }

  #maxBlocks(): number {
    return this.#maxTransferBytes > 0 ? Math.floor(this.#maxTransferBytes / this.blockSize) : 0;
  }

  async #splitData(kind: 'write' | 'compare', slba: number, nlb: number, data: Buffer, fua: boolean): Promise<void> {
    const maxBlocks = this.#maxBlocks();
    if (maxBlocks === 0 || nlb <= maxBlocks) {
      await this.#submit(fua ? { kind, slba, nlb, data, fua } : { kind, slba, nlb, data });
      return;
    }
    const parts: Promise<unknown>[] = [];
    for (let off = 0; off < nlb; off += maxBlocks) {
      const n = Math.min(maxBlocks, nlb - off);
      const chunk = data.subarray(off * this.blockSize, (off + n) * this.blockSize);
      parts.push(this.#submit(fua ? { kind, slba: slba + off, nlb: n, data: chunk, fua } : { kind, slba: slba + off, nlb: n, data: chunk }));
    }
    await Promise.all(parts);
  }

  #submitRead(slba: number, nlb: number, into: Buffer | undefined): Promise<Buffer> {
    // The fast path checks the length in its completion (#checkRead); the slow path's result is checked here.
    const io: IoRequest = into ? { kind: 'read', slba, nlb, into } : { kind: 'read', slba, nlb };
    const fast = this.#fastSubmit(io, false);
    if (fast !== null) return fast as Promise<Buffer>;
    return this.#slowSubmit(io, false).then((data) => this.#checkRead(io, data));
  }

  #checkRead(io: IoRequest, data: Buffer | undefined): Buffer {
    if (data === undefined || data.length !== io.nlb * this.blockSize) {
      throw new MultipathError('EIO', `read of ${io.nlb} blocks at ${io.slba} on ${this.name}: the path returned ${data?.length ?? 'no'} bytes`);
    }
    return data;
  }

  // ---------------------------------------------------------------- the request lifecycle

  #submit(io: IoRequest): Promise<Buffer | undefined> {
    const writeLike = WRITE_LIKE.has(io.kind);
    return this.#fastSubmit(io, writeLike) ?? this.#slowSubmit(io, writeLike);
  }

  #slowSubmit(io: IoRequest, writeLike: boolean): Promise<Buffer | undefined> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const req: Req = {
        seq: this.#seq++,
        io,
        writeLike,
        submittedAt: Date.now(),
        state: 'queued',
        retries: 0,
        requeues: 0,
        retryOn: null,
        fence: null,
        dispatchEpoch: 0,
        activeAtDispatch: false,
        resolve,
        reject,
      };
      this.#counters.ios++;
      this.#pending.push(req);
      if (writeLike) this.#unfinishedWrites.add(req);
      this.#kick();
    });
  }

  /**
   * The direct-dispatch fast path: when the head is serving with nothing
   * queued or requeued, no failover episode and no no-path episode open, not
   * inside a #kick(), and the policy's path is usable, the I/O goes straight
   * to the path without a Req, a #kick() or a promise of its own; a success
   * completes straight to the caller. Anything else on completion (an error
   * status, a path error, a rejection) becomes a Req handed to the slow path's
   * disposition, as if it had been dispatched by #drain(). A write-like I/O
   * that overlaps an unfinished write takes the slow path (it must wait).
   * Returns null when the slow path must take the I/O.
   */
  #fastSubmit(io: IoRequest, writeLike: boolean): Promise<Buffer | undefined> | null {
    if (this.#pending.length !== 0 || this.#failover !== null || this.#noPathSince !== null || this.#kicking || this.#closed) return null;
    if (writeLike && this.#unfinishedWrites.size !== 0) {
      for (const w of this.#unfinishedWrites) if (overlaps(w.io, io)) return null;
    }
    const entry = this.#fastChoose();
    if (entry === null) return null;
    const seq = this.#seq++;
    const submittedAt = Date.now();
    const dispatchEpoch = this.#activationEpoch;
    const activeAtDispatch = this.#policy === 'active-standby';
    const rec: WriteRec | null = writeLike ? { seq, io } : null;
    if (rec !== null) this.#unfinishedWrites.add(rec);
    this.#counters.ios++;
    entry.inflight++;
    entry.ios++;
    this.#fastInflight++;
    let p: Promise<PathOutcome>;
    try {
      p = entry.path.submit(io);
    } catch (e) {
      p = Promise.resolve({ kind: 'path-error', reason: `submit threw: ${errText(e)}`, mayHaveExecuted: false });
    }
    const slow = (outcome: PathOutcome): Promise<Buffer | undefined> => {
      entry.inflight--;
      this.#fastInflight--;
      if (rec !== null) this.#unfinishedWrites.delete(rec);
      const done = new Promise<Buffer | undefined>((resolve, reject) => {
        const req: Req = {
          seq,
          io,
          writeLike,
          submittedAt,
          state: 'inflight',
          retries: 0,
          requeues: 0,
          retryOn: null,
          fence: null,
          dispatchEpoch,
          activeAtDispatch,
          resolve,
          reject,
        };
        if (writeLike) this.#unfinishedWrites.add(req);
        this.#handleOutcome(req, entry, outcome);
      });
      return io.kind === 'read' ? done.then((data) => this.#checkRead(io, data)) : done;
    };
    return p.then(
      (outcome) => {
        if (outcome.kind !== 'completed' || outcome.status !== 0) return slow(outcome);
        entry.inflight--;
        this.#fastInflight--;
        if (rec !== null) this.#unfinishedWrites.delete(rec);
        if (io.kind === 'read') {
          this.#counters.bytesRead += io.nlb * this.blockSize;
        } else if (io.kind === 'write') {
          this.#counters.bytesWritten += io.nlb * this.blockSize;
        }
        // Something may wait for this I/O (an overlapping write) or for a path.
        if (this.#pending.length !== 0) this.#kick();
        if (this.#closed) this.#maybeClosed();
        return io.kind === 'read' ? this.#checkRead(io, outcome.data) : undefined;
      },
      (e: unknown) => slow({ kind: 'path-error', reason: `submit rejected: ${errText(e)}`, mayHaveExecuted: true }),
    );
  }

  /** The policy's path for the fast path, or null (then the slow path decides). */
  #fastChoose(): PathEntry | null {
    if (this.#policy === 'active-standby') {
      const a = this.#active;
      return a !== null && isUsableForIo(a) ? a : null;
    }
    const entries = this.#entries;
    if (entries.length === 1) {
      const e = entries[0]!;
      return isUsableForIo(e) ? e : null;
    }
    // Anti-flap depends on the clock: left to the slow path's selector.
    if (this.#failoverIntervalMs > 0) return null;
    let pool = this.#pool;
    if (pool === null) {
      pool = [];
      for (const e of entries) if (isUsableForIo(e) && e.path.anaState === AnaState.Optimized) pool.push(e);
      if (pool.length === 0) for (const e of entries) if (isUsableForIo(e) && e.path.anaState === AnaState.NonOptimized) pool.push(e);
      pool.sort((a, b) => a.order - b.order);
      this.#pool = pool;
    }
    if (pool.length === 0) return null;
    let chosen: PathEntry;
    switch (this.#policy) {
      case 'numa': {
        chosen = pool[0]!;
        for (const c of pool) if ((c.path.numaNode === this.#numaNode ? 10 : 20) < (chosen.path.numaNode === this.#numaNode ? 10 : 20)) chosen = c;
        break;
      }
      case 'round-robin': {
        const lastPath = this.#lastRoundRobin;
        const last = lastPath === null ? undefined : entries.find((c) => c.path === lastPath);
        chosen = last === undefined ? pool[0]! : (pool.find((c) => c.order > last.order) ?? pool[0]!);
        break;
      }
      default: {
        chosen = pool[0]!;
        for (const c of pool) if (c.inflight < chosen.inflight) chosen = c;
      }
    }
    // A path that changed without telling (no 'change' yet): the slow path refreshes.
    if (!isUsableForIo(chosen)) {
      this.#pool = null;
      return null;
    }
    if (this.#policy === 'round-robin') this.#lastRoundRobin = chosen.path;
    return chosen;
  }

  /**
   * Drain the requeue list. Re-entrant calls (from events emitted while
   * draining, or from callbacks) fold into one more pass.
   */
  #kick(): void {
    if (this.#closed) return;
    if (this.#kicking) {
      this.#kickAgain = true;
      return;
    }
    this.#kicking = true;
    this.#pool = null;
    try {
      let passes = 0;
      do {
        this.#kickAgain = false;
        this.#refreshPaths();
        if (this.#policy === 'active-standby') this.#ensureActive();
        this.#pool = null;
        this.#drain();
        this.#updateNoPath();
        // Events emitted above may ask for another pass; bounded, since every
        // pass without new input is a no-op.
      } while (this.#kickAgain && !this.#closed && ++passes < 100);
    } finally {
      this.#kicking = false;
    }
  }

  #selectContext(): SelectContext {
    return {
      now: Date.now(),
      failoverIntervalMs: this.#failoverIntervalMs,
      numaNode: this.#numaNode,
      lastRoundRobin: this.#lastRoundRobin,
    };
  }

  #drain(): void {
    if (this.#pending.length === 0) return;
    const keep: Req[] = [];
    let nowhere = false;
    const list = this.#pending;
    this.#pending = keep;
    for (const req of list) {
      if (req.state !== 'queued') continue;
      if (nowhere || !this.#fenceLifted(req) || this.#blockedByEarlierWrite(req)) {
        keep.push(req);
        continue;
      }
      const entry = this.#choose(req);
      if (entry === null) {
        keep.push(req);
        // The choice does not depend on the request unless it is a same-path retry.
        if (req.retryOn === null) nowhere = true;
        continue;
      }
      this.#dispatch(req, entry);
    }
    // Requests requeued synchronously while draining landed in `keep` out of order.
    keep.sort((a, b) => a.seq - b.seq);
  }

  #choose(req: Req): PathEntry | null {
    if (this.#policy === 'active-standby') {
      const a = this.#active;
      return a !== null && isUsableForIo(a) ? a : null;
    }
    if (req.retryOn !== null && !req.retryOn.removed && isUsableForIo(req.retryOn)) return req.retryOn;
    const chosen = selectPath(this.#policy, this.#entries, this.#selectContext());
    if (chosen !== null && this.#policy === 'round-robin') this.#lastRoundRobin = chosen.path;
    return chosen;
  }

  #dispatch(req: Req, entry: PathEntry): void {
    req.state = 'inflight';
    req.retryOn = null;
    req.dispatchEpoch = this.#activationEpoch;
    req.activeAtDispatch = this.#policy === 'active-standby' && entry === this.#active;
    entry.inflight++;
    entry.ios++;
    this.#inflight.add(req);
    let p: Promise<PathOutcome>;
    try {
      p = entry.path.submit(req.io);
    } catch (e) {
      p = Promise.resolve({ kind: 'path-error', reason: `submit threw: ${errText(e)}`, mayHaveExecuted: false });
    }
    p.then(
      (outcome) => this.#onOutcome(req, entry, outcome),
      (e: unknown) =>
        this.#onOutcome(req, entry, { kind: 'path-error', reason: `submit rejected: ${errText(e)}`, mayHaveExecuted: true }),
    );
  }

  #onOutcome(req: Req, entry: PathEntry, outcome: PathOutcome): void {
    entry.inflight--;
    this.#inflight.delete(req);
    if (req.state !== 'inflight') return;
    this.#handleOutcome(req, entry, outcome);
  }

  /** Disposition of one outcome of a dispatched request (its inflight accounting already undone). */
  #handleOutcome(req: Req, entry: PathEntry, outcome: PathOutcome): void {
    const ok = outcome.kind === 'completed' && outcome.status === 0;
    if (!ok) entry.errors++;
    if (this.#closed) {
      if (ok) this.#succeed(req, entry, outcome);
      else this.#fail(req, this.#closedError());
      this.#maybeClosed();
      return;
    }
    const disposition = decideDisposition(outcome, req.retries, this.#maxRetries);
    switch (disposition) {
      case 'complete':
        if (outcome.kind === 'completed' && outcome.status === 0) {
          this.#succeed(req, entry, outcome);
        } else if (outcome.kind === 'completed') {
          this.#fail(req, new NvmeStatusError(outcome.status, entry.name, this.#describe(req.io), req.retries));
        }
        break;
      case 'retry':
        req.retries++;
        this.#counters.retries++;
        req.retryOn = entry;
        this.#log.debug(
          { path: entry.name, kind: req.io.kind, slba: req.io.slba, status: outcome.kind === 'completed' ? describeStatus(outcome.status) : undefined, retry: req.retries },
          'retrying on the same path',
        );
        this.#requeue(req);
        break;
      case 'failover': {
        const reason = outcome.kind === 'path-error' ? `path error: ${outcome.reason}` : `path status ${describeStatus(outcome.status)}`;
        req.requeues++;
        this.#counters.requeues++;
        if (req.writeLike && mayHaveExecuted(outcome)) this.#fence(req, entry);
        // ANA Inaccessible on our active path: the target made another path active.
        if (this.#active === entry && outcome.kind === 'completed' && (outcome.status & 0x7ff) === Status.AnaInaccessible) entry.takenOver = true;
        this.#markSuspect(entry, reason);
        if (this.#policy !== 'active-standby') this.#startFailover(entry.name, reason);
        this.#log.debug({ path: entry.name, kind: req.io.kind, slba: req.io.slba, reason, fenced: req.fence !== null }, 'requeued for failover');
        this.#requeue(req);
        break;
      }
    }
    this.#kick();
  }

  #requeue(req: Req): void {
    req.state = 'queued';
    // Keep the list in submission order: older I/O first.
    let i = this.#pending.length;
    while (i > 0 && this.#pending[i - 1]!.seq > req.seq) i--;
    this.#pending.splice(i, 0, req);
  }

  #succeed(req: Req, entry: PathEntry, outcome: PathOutcome & { kind: 'completed' }): void {
    const bytes = req.io.nlb * this.blockSize;
    if (req.io.kind === 'read') this.#counters.bytesRead += bytes;
    else if (req.io.kind === 'write') this.#counters.bytesWritten += bytes;
    if (this.#failover !== null && req.requeues > 0 && this.#policy !== 'active-standby') this.#endFailover(entry.name);
    this.#finish(req);
    req.resolve(req.io.kind === 'read' ? outcome.data : undefined);
  }

  #fail(req: Req, err: Error): void {
    this.#counters.errors++;
    this.#finish(req);
    this.#log.warn(
      { kind: req.io.kind, slba: req.io.slba, nlb: req.io.nlb, code: (err as MultipathError).code, err: err.message },
      'I/O failed',
    );
    req.reject(err);
  }

  #finish(req: Req): void {
    req.state = 'done';
    req.fence = null;
    if (req.writeLike) this.#unfinishedWrites.delete(req);
  }

  #maybeClosed(): void {
    if (this.#closed && this.#inflight.size + this.#fastInflight === 0) {
      const waiters = this.#closeWaiters;
      this.#closeWaiters = [];
      for (const w of waiters) w();
    }
  }

  #describe(io: IoRequest): string {
    return io.kind === 'flush' ? `flush of ${this.name}` : `${io.kind} of ${io.nlb} block(s) at LBA ${io.slba} of ${this.name}`;
  }

  /** A write-like request waits for every earlier unfinished write-like request it overlaps. */
  #blockedByEarlierWrite(req: Req): boolean {
    if (!req.writeLike) return false;
    for (const w of this.#unfinishedWrites) {
      if (w.seq < req.seq && overlaps(w.io, req.io)) return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- fencing

  #fence(req: Req, from: PathEntry): void {
    const fence: Fence = {
      from,
      viaActivation: req.activeAtDispatch,
      dispatchEpoch: req.dispatchEpoch,
      quiesced: false,
    };
    req.fence = fence;
    this.#counters.fencedWrites++;
    let p: Promise<void>;
    try {
      p = from.path.quiesced();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      () => {
        fence.quiesced = true;
        if (req.fence === fence) this.#log.debug({ path: from.name, slba: req.io.slba }, 'old path quiesced: fence lifted');
        this.#kick();
      },
      (e: unknown) => {
        // Safety first: an unproven fence keeps the write waiting (until an
        // activation elsewhere fences it, or the head is closed).
        this.#log.error({ path: from.name, err: errText(e) }, 'quiesced() rejected: write stays fenced');
      },
    );
  }

  #fenceLifted(req: Req): boolean {
    const f = req.fence;
    if (f === null) return true;
    let lifted = f.quiesced;
    if (!lifted && f.viaActivation) {
      for (const [path, epoch] of this.#activations) {
        if (path !== f.from.path && epoch > f.dispatchEpoch) {
          lifted = true;
          break;
        }
      }
    }
    if (lifted) req.fence = null;
    return lifted;
  }

  // ---------------------------------------------------------------- path state

  #onPathChange(entry: PathEntry): void {
    if (entry.removed) return;
    // The path re-evaluated itself (state or ANA log): give it another chance.
    this.#clearSuspect(entry);
    if (entry.anaAtActivation !== null && entry.path.anaState !== entry.anaAtActivation) entry.anaAtActivation = null;
    this.#kick();
  }

  #markSuspect(entry: PathEntry, reason: string): void {
    entry.demotedAt = Date.now();
    if (entry.suspect !== null || entry.removed) return;
    entry.suspect = reason;
    entry.excluded = true;
    if (this.#suspectTimeoutMs > 0) {
      entry.suspectTimer = setTimeout(() => {
        entry.suspectTimer = null;
        if (entry.suspect === null) return;
        this.#log.debug({ path: entry.name }, 'path no longer held out after a failure');
        entry.suspect = null;
        entry.excluded = entry.removed;
        this.#kick();
      }, this.#suspectTimeoutMs);
      entry.suspectTimer.unref?.();
    }
  }

  #clearSuspect(entry: PathEntry): void {
    if (entry.suspectTimer !== null) clearTimeout(entry.suspectTimer);
    entry.suspectTimer = null;
    entry.suspect = null;
    entry.excluded = entry.removed;
  }

  /** Up for events: could serve I/O (active-standby: could be made active). */
  #isUp(e: PathEntry): boolean {
    if (e.removed || e.suspect !== null || e.path.controllerState !== 'live') return false;
    if (this.#policy === 'active-standby') return e.path.anaState !== AnaState.PersistentLoss;
    return isAnaAccessible(e.path.anaState);
  }

  #pathReason(e: PathEntry): string {
    if (e.removed) return 'removed';
    if (e.suspect !== null) return e.suspect;
    if (e.path.controllerState !== 'live') return `controller ${e.path.controllerState}`;
    return `ANA ${anaName(e.path.anaState)}`;
  }

  #refreshPaths(): void {
    for (const e of this.#entries) {
      const up = this.#isUp(e);
      if (up === e.up) continue;
      e.up = up;
      if (up) {
        const reason = `controller live, ANA ${anaName(e.path.anaState)}`;
        this.#log.info({ event: 'path-up', path: e.name, reason }, 'path up');
        this.emit('path-up', { path: e.name, reason });
      } else {
        e.demotedAt = Date.now();
        this.#pathDown(e, this.#pathReason(e));
      }
    }
  }

  #pathDown(e: PathEntry, reason: string): void {
    this.#log.warn({ event: 'path-down', path: e.name, reason }, 'path down');
    this.emit('path-down', { path: e.name, reason });
  }

  // ---------------------------------------------------------------- active-standby

  /** Why the active path can no longer be the active one, or null. */
  #activeFault(a: PathEntry): string | null {
    if (a.removed) return 'removed';
    if (a.suspect !== null) return a.suspect;
    if (a.path.controllerState !== 'live') return `controller ${a.path.controllerState}`;
    if (a.path.anaState === AnaState.PersistentLoss) return 'ANA persistent loss';
    // Inaccessible reported after our activation: someone else took it.
    // (Right after 0xFE the ANA state may still be the stale one: wait for the change.)
    if (a.path.anaState === AnaState.Inaccessible && a.anaAtActivation === null) return 'ANA inaccessible';
    return null;
  }

  #ensureActive(): void {
    const a = this.#active;
    if (a !== null) {
      const fault = this.#activeFault(a);
      if (fault === null) return;
      this.#active = null;
      a.demotedAt = Date.now();
      if (fault === 'ANA inaccessible') a.takenOver = true;
      this.#log.warn({ path: a.name, reason: fault }, 'active path demoted');
      this.#startFailover(a.name, fault);
    }
    if (this.#activating !== null || this.#activationPending) return;
    if (this.#pickActivationCandidate() === null) return;
    // Choose in a microtask: a target moving the active path changes the ANA
    // state of several paths in one burst; choosing in the middle of it could
    // take a path that is about to be reported standby.
    this.#activationPending = true;
    queueMicrotask(() => {
      this.#activationPending = false;
      if (this.#closed || this.#policy !== 'active-standby' || this.#active !== null || this.#activating !== null) return;
      const candidate = this.#pickActivationCandidate();
      if (candidate !== null) this.#activate(candidate);
      this.#kick();
    });
  }

  #pickActivationCandidate(): PathEntry | null {
    const live = this.#entries.filter((e) => !e.removed);
    const ctx = this.#selectContext();
    // The target has just told us the taken-over path is inaccessible; the
    // other paths' ANA state may not be refreshed yet (their ANA change event
    // can arrive later) and so look no better. Taking it back would undo the
    // move that demoted it: prefer any other path that can be made active.
    const others = live.filter((e) => !e.takenOver);
    if (others.length < live.length) {
      const pick = selectActivationCandidate(others, ctx);
      if (pick !== null) return pick;
      // The others are held out for now (an I/O failed on them, typically with
      // the ANA status of the move itself); their next 'change', or the suspect
      // timeout, brings them back: wait for that rather than take the path back.
      if (others.some((e) => e.suspect !== null && e.path.controllerState === 'live')) return null;
    }
    return selectActivationCandidate(live, ctx);
  }

  #activate(entry: PathEntry): void {
    this.#activating = entry;
    this.#counters.activations++;
    this.#log.info({ path: entry.name, ana: anaName(entry.path.anaState) }, 'sending Set Namespace Active (0xFE)');
    let p: Promise<PathOutcome>;
    try {
      p = entry.path.setActive();
    } catch (e) {
      p = Promise.resolve({ kind: 'path-error', reason: `setActive threw: ${errText(e)}`, mayHaveExecuted: false });
    }
    p.then(
      (o) => this.#onActivated(entry, o),
      (e: unknown) => this.#onActivated(entry, { kind: 'path-error', reason: `setActive rejected: ${errText(e)}`, mayHaveExecuted: true }),
    );
  }

  #onActivated(entry: PathEntry, outcome: PathOutcome): void {
    if (this.#activating === entry) this.#activating = null;
    const ok = outcome.kind === 'completed' && outcome.status === 0;
    if (ok) {
      // The target fenced the previous active path before completing 0xFE:
      // record it whatever happened meanwhile, writes waiting on it may go.
      this.#activations.delete(entry.path);
      this.#activations.set(entry.path, ++this.#activationEpoch);
      // Bounded history (paths come and go with reconnects): the oldest go first.
      if (this.#activations.size > 64) this.#activations.delete(this.#activations.keys().next().value!);
    }
    if (this.#closed) return;
    if (!ok) {
      const reason =
        outcome.kind === 'path-error' ? `setActive: path error: ${outcome.reason}` : `setActive: ${describeStatus(outcome.status)}`;
      this.#log.warn({ path: entry.name, reason }, 'Set Namespace Active failed');
      this.#markSuspect(entry, reason);
    } else if (this.#policy === 'active-standby' && !entry.removed && this.#active === null) {
      this.#active = entry;
      // A takeover is remembered until our next activation: only the latest one says where not to go back.
      for (const e of this.#entries) e.takenOver = false;
      const ana = entry.path.anaState;
      entry.anaAtActivation = isAnaAccessible(ana) ? null : ana;
      this.#log.info({ path: entry.name, ana: anaName(ana) }, 'path is active');
      if (this.#failover !== null) this.#endFailover(entry.name);
    }
    this.#kick();
  }

  // ---------------------------------------------------------------- failover and no-path episodes

  #startFailover(from: string, reason: string): void {
    if (this.#failover !== null) return;
    this.#failover = { from, startedAt: Date.now() };
    this.#counters.failovers++;
    this.#log.warn({ event: 'failover-start', from, reason }, 'failover start');
    this.emit('failover-start', { from, reason });
  }

  #endFailover(to: string): void {
    const f = this.#failover;
    if (f === null) return;
    this.#failover = null;
    const durationMs = Date.now() - f.startedAt;
    this.#log.info({ event: 'failover-end', from: f.from, to, durationMs }, 'failover end');
    this.emit('failover-end', { from: f.from, to, durationMs });
  }

  /** Some path can take I/O now, or one is being made active. */
  #serving(): boolean {
    if (this.#closed) return false;
    if (this.#policy === 'active-standby') return this.#active !== null || this.#activating !== null || this.#activationPending;
    return this.#entries.some(isUsableForIo);
  }

  #updateNoPath(): void {
    const serving = this.#serving();
    const now = Date.now();
    if (!serving && this.#noPathSince === null) {
      this.#noPathSince = now;
      this.#noPathExpired = false;
      const paths = this.#entries.map((e) => `${e.name} ${this.#pathReason(e)}`);
      this.#log.warn({ event: 'no-path', queued: this.#pending.length, paths }, 'no usable path: queueing I/O');
      this.#armNoPathTimer();
      this.emit('no-path', { queued: this.#pending.length, paths });
    } else if (serving && this.#noPathSince !== null) {
      const waited = now - this.#noPathSince;
      this.#closeNoPathEpisode();
      this.#log.info({ event: 'path-back', noPathMs: waited }, 'usable path back: resuming queued I/O');
    }
    if (this.#entries.length === 0) this.#failWaiting('all-paths-removed');
    else if (this.#noPathExpired && !serving) this.#failWaiting('timeout');
    // Linux's nvme_available_path: a controller past fast_io_fail_tmo is no path to wait for.
    else if (!serving && this.#entries.every((e) => e.path.failfastExpired === true)) this.#failWaiting('failfast');
  }

  #closeNoPathEpisode(): void {
    if (this.#noPathSince !== null) this.#noPathMsDone += Date.now() - this.#noPathSince;
    this.#noPathSince = null;
    this.#noPathExpired = false;
    if (this.#noPathTimer !== null) clearTimeout(this.#noPathTimer);
    this.#noPathTimer = null;
  }

  #armNoPathTimer(): void {
    if (this.#noPathTimer !== null) clearTimeout(this.#noPathTimer);
    this.#noPathTimer = null;
    if (this.#noPathTimeoutMs === null || this.#noPathSince === null) return;
    const left = Math.max(0, this.#noPathSince + this.#noPathTimeoutMs - Date.now());
    this.#noPathTimer = setTimeout(() => {
      this.#noPathTimer = null;
      this.#noPathExpired = true;
      this.#log.warn({ noPathTimeoutMs: this.#noPathTimeoutMs }, 'no_path_timeout passed: failing queued I/O');
      this.#kick();
    }, left);
    this.#noPathTimer.unref?.();
  }

  /**
   * Fail the queued I/O that waits only for a path. Writes still waiting for
   * a fence stay until it lifts (then fail here at the next kick), so a write
   * that may still land late is never reported before it no longer can.
   */
  #failWaiting(reason: 'timeout' | 'all-paths-removed' | 'failfast'): void {
    if (this.#pending.length === 0) return;
    const now = Date.now();
    const detail =
      reason === 'timeout'
        ? `no_path_timeout ${this.#noPathTimeoutMs} ms; paths: ${this.#entries.map((e) => `${e.name} ${this.#pathReason(e)}`).join(', ') || 'none'}`
        : `${this.name} has no path left`;
    const list = this.#pending;
    this.#pending = [];
    for (const req of list) {
      if (req.state !== 'queued') continue;
      if (!this.#fenceLifted(req)) {
        this.#pending.push(req);
        continue;
      }
      this.#fail(req, new NoPathError(this.name, reason, now - req.submittedAt, detail));
    }
  }
}
