/**
 * The multipath head: one namespace seen through many paths (one per
 * controller). It takes block I/O from callers, sends each command down one
 * path, and decides on every outcome whether to complete it, retry it on the
 * same path, or fail it over (disposition.ts). The head is the coordinator;
 * each concern is a unit of its own:
 *
 *   dispatch.ts     Dispatcher: the request lifecycle, the requeue list and
 *                   direct dispatch (the fast path)
 *   paths.ts        the paths, their hold-out after a failure, path-up/down
 *   selector.ts     PathSelector: which path (the one copy of the policy rules,
 *                   with a cached pool for the fast path)
 *   write-order.ts  WriteOrder: per-block write order and write fencing
 *   activation.ts   ActiveStandby: Set Namespace Active (0xFE) and the active path
 *   no-path.ts      NoPathTimer: the no-path episode and no_path_timeout
 *   settings.ts     the tunables, checked once, shared by the units
 *
 * The head itself checks arguments, keeps the identity, the counters, the
 * failover episode and the events, and runs `#kick()`: re-evaluate the paths,
 * the active path, drain the requeue list, update the no-path episode. It
 * runs on events only (a path's 'change' or 'removed', a path joining, a 0xFE
 * completion, a fence lifting, an I/O ending, a policy change): never a
 * polling loop.
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import { realClock, type Clock } from '../../shared/clock.ts';
import type { IoKind, IoRequest, NamespaceIds, Path } from '../path.ts';
import { ActiveStandby } from './activation.ts';
import { checkData, checkRange, checkReadInto } from './args.ts';
import { Dispatcher } from './dispatch.ts';
import { MultipathError } from './errors.ts';
import { checkJoin } from './ids.ts';
import { NoPathTimer } from './no-path.ts';
import { PathSet, anaName } from './paths.ts';
import { PathSelector, isUsableForIo, type IoPolicy } from './selector.ts';
import { applyRuntimeOptions, checkPolicy, resolveSettings, type HeadSettings, type RuntimeOptions } from './settings.ts';
import type { HeadCounters, HeadEvents, HeadIdentity, HeadOptions, HeadPhase, HeadSnapshot, PathEntry } from './types.ts';
import { WriteOrder } from './write-order.ts';

export { DEFAULT_SUSPECT_TIMEOUT_MS } from './types.ts';
export type {
  HeadCounters,
  HeadEvents,
  HeadIdentity,
  HeadOptions,
  HeadSnapshot,
  PathSnapshot,
  PathDownEvent,
  PathUpEvent,
  FailoverStartEvent,
  FailoverEndEvent,
  NoPathEvent,
} from './types.ts';

const silentLogger: Logger = pino({ level: 'silent' });

const WRITE_LIKE: ReadonlySet<IoKind> = new Set<IoKind>(['write', 'write-zeroes', 'deallocate']);

/**
 * The head reads time in whole milliseconds: its durations and ages (events,
 * snapshots, errors) have always been integers, and a monotonic clock keeps
 * them from going backwards. Made once per head.
 */
function wholeMilliseconds(base: Clock): Clock {
  return {
    setTimeout: (fn, ms) => base.setTimeout(fn, ms),
    clearTimeout: (handle) => base.clearTimeout(handle),
    now: () => Math.floor(base.now()),
    wallNow: () => base.wallNow(),
  };
}

export class MultipathHead extends EventEmitter<HeadEvents> {
  readonly name: string;
  readonly subnqn: string;
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  #nblocks: number;

  readonly #settings: HeadSettings;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #paths: PathSet;
  readonly #selector: PathSelector;
  readonly #order: WriteOrder;
  readonly #activation: ActiveStandby;
  readonly #noPath: NoPathTimer;
  readonly #dispatch: Dispatcher;

  #failover: { from: string; startedAt: number } | null = null;
  #kickAgain = false;
  /** kicking, failingOver, closed: read by the dispatcher's fast path. */
  readonly #phase: HeadPhase = { kicking: false, failingOver: false, closed: false };

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
    const settings = (this.#settings = resolveSettings(options, this.blockSize));
    const clock = (this.#clock = wholeMilliseconds(options.clock ?? realClock));
    const log = (this.#log = (options.logger ?? silentLogger).child({ head: this.name }));
    // The units' hooks into the head, made once (nothing per I/O).
    const kick = (): void => this.#kick();
    this.#paths = new PathSet({
      clock,
      log,
      settings,
      kick,
      pathUp: (path, reason) => {
        log.info({ event: 'path-up', path, reason }, 'path up');
        this.emit('path-up', { path, reason });
      },
      pathDown: (path, reason) => {
        log.warn({ event: 'path-down', path, reason }, 'path down');
        this.emit('path-down', { path, reason });
      },
    });
    this.#selector = new PathSelector(settings, clock);
    this.#order = new WriteOrder(log, kick);
    // The phase record is one readonly object for the head's life, so the getter can read it directly.
    const phase = this.#phase;
    this.#activation = new ActiveStandby({
      clock,
      log,
      settings,
      paths: this.#paths,
      writeOrder: this.#order,
      get closed() {
        return phase.closed;
      },
      selectContext: () => this.#selector.context(),
      sent: () => {
        this.#counters.activations++;
      },
      startFailover: (from, reason) => this.#startFailover(from, reason),
      endFailover: (to) => this.#endFailover(to),
      kick,
    });
    this.#noPath = new NoPathTimer({
      clock,
      log,
      settings,
      kick,
      noPath: () => {
        const paths = this.#paths.describe();
        log.warn({ event: 'no-path', queued: this.#dispatch.queued, paths }, 'no usable path: queueing I/O');
        this.emit('no-path', { queued: this.#dispatch.queued, paths });
      },
    });
    this.#dispatch = new Dispatcher({
      name: this.name,
      blockSize: this.blockSize,
      clock,
      log,
      settings,
      counters: this.#counters,
      paths: this.#paths,
      selector: this.#selector,
      order: this.#order,
      activation: this.#activation,
      noPath: this.#noPath,
      phase: this.#phase,
      startFailover: (from, reason) => this.#startFailover(from, reason),
      endFailover: (to) => this.#endFailover(to),
      kick,
    });
  }

  // ---------------------------------------------------------------- identity

  get nblocks(): number {
    return this.#nblocks;
  }
  get policy(): IoPolicy {
    return this.#settings.policy;
  }
  get paths(): readonly Path[] {
    return this.#paths.entries.map((e) => e.path);
  }
  get closed(): boolean {
    return this.#phase.closed;
  }
  /** Active-standby: the active path, if any. */
  get activePath(): Path | null {
    return this.#activation.active?.path ?? null;
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
      this.#checkOpen();
      checkRange(this, 'read', slba, nlb);
      checkReadInto(this, nlb, into);
    } catch (e) {
      return Promise.reject(e);
    }
    const dest = into?.subarray(0, nlb * this.blockSize);
    const maxBlocks = this.#maxBlocks();
    if (maxBlocks > 0 && nlb > maxBlocks) {
      const parts: Promise<Buffer>[] = [];
      for (let off = 0; off < nlb; off += maxBlocks) {
        const n = Math.min(maxBlocks, nlb - off);
        const part = dest?.subarray(off * this.blockSize, (off + n) * this.blockSize);
        parts.push(this.#dispatch.submitRead(part ? { kind: 'read', slba: slba + off, nlb: n, into: part } : { kind: 'read', slba: slba + off, nlb: n }));
      }
      return Promise.all(parts).then((bufs) => dest ?? Buffer.concat(bufs));
    }
    return this.#dispatch.submitRead(dest ? { kind: 'read', slba, nlb, into: dest } : { kind: 'read', slba, nlb });
  }

  /** Write data (a whole number of blocks) at slba. */
  write(slba: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    let nlb: number;
    try {
      this.#checkOpen();
      nlb = checkData(this, 'write', slba, data);
    } catch (e) {
      return Promise.reject(e);
    }
    const maxBlocks = this.#maxBlocks();
    if (maxBlocks === 0 || nlb <= maxBlocks) {
      // Resolves with undefined for writes (fast and slow path alike).
      return this.#dispatch.submit(
        opts.fua === true ? { kind: 'write', slba, nlb, data, fua: true } : { kind: 'write', slba, nlb, data },
        true,
      ) as Promise<unknown> as Promise<void>;
    }
    return this.#splitData('write', slba, nlb, data, opts.fua === true);
  }

  /** Compare data with the medium at slba; rejects with NvmeStatusError (CompareFailure) on a miscompare. */
  async compare(slba: number, data: Buffer): Promise<void> {
    this.#checkOpen();
    const nlb = checkData(this, 'compare', slba, data);
    await this.#splitData('compare', slba, nlb, data, false);
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    await this.#submit({ kind: 'flush', slba: 0, nlb: 0 });
  }

  async writeZeroes(slba: number, nlb: number, opts: { deallocate?: boolean } = {}): Promise<void> {
    this.#checkOpen();
    checkRange(this, 'writeZeroes', slba, nlb);
    await this.#submit({ kind: 'write-zeroes', slba, nlb, deallocate: opts.deallocate === true });
  }

  async deallocate(slba: number, nlb: number): Promise<void> {
    this.#checkOpen();
    checkRange(this, 'deallocate', slba, nlb);
    await this.#submit({ kind: 'deallocate', slba, nlb });
  }

  // ---------------------------------------------------------------- control

  setPolicy(policy: IoPolicy): void {
    checkPolicy(policy);
    if (policy === this.#settings.policy) return;
    const from = this.#settings.policy;
    this.#settings.policy = policy;
    // Leaving active-standby forgets the active path (the target keeps its ANA
    // states, which every policy follows); an activation under way still
    // counts for fencing when it completes. Entering it picks one on the kick.
    this.#activation.dropActive();
    this.#selector.forget();
    this.#log.info({ from, to: policy }, 'I/O policy changed');
    this.#kick();
  }

  /** Change options at run time (policy has setPolicy). */
  setOptions(opts: RuntimeOptions): void {
    if (applyRuntimeOptions(this.#settings, opts)) this.#noPath.rearm();
    this.#kick();
  }

  /**
   * Add a path (the registry calls this after pairing it by namespace ids).
   * Throws EIDMISMATCH / EGEOMETRY when the path does not belong here.
   */
  addPath(path: Path): void {
    this.#checkOpen();
    if (this.#paths.find(path) !== undefined) {
      throw new MultipathError('EEXIST', `path ${path.name} is already part of ${this.name}`);
    }
    checkJoin(this, path);
    if (path.nblocks !== this.#nblocks) {
      this.#log.warn({ path: path.name, was: this.#nblocks, now: path.nblocks }, 'namespace size changed');
      this.#nblocks = path.nblocks;
    }
    this.#paths.add(
      path,
      (entry) => this.#onPathChange(entry),
      (p) => this.removePath(p),
    );
    this.#log.info({ path: path.name, address: path.address, cntlid: path.cntlid, state: path.controllerState, ana: anaName(path.anaState) }, 'path joined');
    this.#kick();
  }

  /** Take a path out (also done on its 'removed' event). Returns false if it was not here. */
  removePath(path: Path): boolean {
    const entry = this.#paths.find(path);
    if (entry === undefined) return false;
    this.#paths.remove(entry);
    this.#selector.forget(path);
    this.#log.info({ path: path.name, remaining: this.#paths.entries.length }, 'path removed');
    this.#kick();
    return true;
  }

  /**
   * Fail queued I/O with ECLOSED, stop listening to paths, and resolve when
   * the I/O in flight has ended (its callers get success or ECLOSED).
   */
  close(): Promise<void> {
    if (!this.#phase.closed) {
      this.#phase.closed = true;
      this.#noPath.close();
      for (const e of this.#paths.entries) {
        this.#paths.clearSuspect(e);
        this.#paths.detach(e);
      }
      return this.#dispatch.close(() => this.#closedError());
    }
    return this.#dispatch.drained();
  }

  state(): HeadSnapshot {
    const now = this.#clock.now();
    const s = this.#settings;
    const active = this.#activation.active;
    return {
      name: this.name,
      subnqn: this.subnqn,
      nsid: this.nsid,
      ids: { ...this.ids },
      blockSize: this.blockSize,
      nblocks: this.#nblocks,
      policy: s.policy,
      closed: this.#phase.closed,
      activePath: active?.name ?? null,
      activating: this.#activation.activating?.name ?? null,
      usable: this.#serving(),
      noPathForMs: this.#noPath.forMs(now),
      failover: this.#failover === null ? null : { from: this.#failover.from, sinceMs: now - this.#failover.startedAt },
      queued: this.#dispatch.queued,
      fenced: this.#dispatch.fenced,
      inflight: this.#dispatch.inflight,
      options: {
        maxRetries: s.maxRetries,
        noPathTimeoutMs: s.noPathTimeoutMs,
        failoverIntervalMs: s.failoverIntervalMs,
        numaNode: s.numaNode,
        suspectTimeoutMs: s.suspectTimeoutMs,
        maxTransferBytes: s.maxTransferBytes,
      },
      counters: { ...this.#counters, noPathMs: this.#noPath.totalMs(now) },
      paths: this.#paths.entries.map((e) => this.#paths.snapshot(e, active, now)),
    };
  }

  // ---------------------------------------------------------------- helpers of the I/O API

  #checkOpen(): void {
    if (this.#phase.closed) throw this.#closedError();
  }

  #closedError(): MultipathError {
    return new MultipathError('ECLOSED', `${this.name} is closed`);
  }

  #maxBlocks(): number {
    return this.#settings.maxTransferBytes > 0 ? Math.floor(this.#settings.maxTransferBytes / this.blockSize) : 0;
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

  #submit(io: IoRequest): Promise<Buffer | undefined> {
    return this.#dispatch.submit(io, WRITE_LIKE.has(io.kind));
  }

  // ---------------------------------------------------------------- coordination

  /**
   * Re-evaluate everything and drain the requeue list. Re-entrant calls (from
   * events emitted while draining, or from callbacks) fold into one more pass.
   */
  #kick(): void {
    if (this.#phase.closed) return;
    if (this.#phase.kicking) {
      this.#kickAgain = true;
      return;
    }
    this.#phase.kicking = true;
    this.#selector.invalidate();
    try {
      let passes = 0;
      do {
        this.#kickAgain = false;
        this.#paths.refresh();
        if (this.#settings.policy === 'active-standby') this.#activation.ensure();
        this.#selector.invalidate();
        this.#dispatch.drain();
        const fail = this.#noPath.update(this.#serving(), this.#paths.entries);
        if (fail !== null) this.#dispatch.failWaiting(fail);
        // Events emitted above may ask for another pass; bounded, since every
        // pass without new input is a no-op.
      } while (this.#kickAgain && !this.#phase.closed && ++passes < 100);
    } finally {
      this.#phase.kicking = false;
    }
  }

  // ---------------------------------------------------------------- path state and episodes

  #onPathChange(entry: PathEntry): void {
    if (entry.removed) return;
    // The path re-evaluated itself (state or ANA log): give it another chance.
    this.#paths.clearSuspect(entry);
    if (entry.anaAtActivation !== null && entry.path.anaState !== entry.anaAtActivation) entry.anaAtActivation = null;
    this.#kick();
  }

  #startFailover(from: string, reason: string): void {
    if (this.#failover !== null) return;
    this.#failover = { from, startedAt: this.#clock.now() };
    this.#phase.failingOver = true;
    this.#counters.failovers++;
    this.#log.warn({ event: 'failover-start', from, reason }, 'failover start');
    this.emit('failover-start', { from, reason });
  }

  #endFailover(to: string): void {
    const f = this.#failover;
    if (f === null) return;
    this.#failover = null;
    this.#phase.failingOver = false;
    const durationMs = this.#clock.now() - f.startedAt;
    this.#log.info({ event: 'failover-end', from: f.from, to, durationMs }, 'failover end');
    this.emit('failover-end', { from: f.from, to, durationMs });
  }

  /** Some path can take I/O now, or one is being made active. */
  #serving(): boolean {
    if (this.#phase.closed) return false;
    if (this.#settings.policy === 'active-standby') return this.#activation.serving;
    return this.#paths.entries.some(isUsableForIo);
  }
}
