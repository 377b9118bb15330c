/**
 * The head's request lifecycle: submit → (direct dispatch | requeue list) →
 * path → outcome → complete, retry on the same path, or fail over
 * (disposition.ts decides from the outcome alone, as Linux's
 * nvme_decide_disposition).
 *
 * - Requeue list: a command that cannot go anywhere right now (no usable
 *   path, failover under way, fenced write, or an earlier overlapping write
 *   still unfinished) waits in `#pending`, in submission order, until the
 *   head's kick drains it. Requests have one state: queued, inflight, done.
 * - Direct dispatch (the fast path): when the head says nothing is going on
 *   and nothing is queued, an I/O goes straight to the selector's path with
 *   no Req, kick or promise of its own; a success completes straight to the
 *   caller, anything else becomes a Req handed to the disposition, as if
 *   #drain() had dispatched it.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import { Status, describeStatus } from '../../shared/status.ts';
import type { IoRequest, PathOutcome } from '../path.ts';
import type { ActiveStandby } from './activation.ts';
import { decideDisposition, mayHaveExecuted } from './disposition.ts';
import { MultipathError, NoPathError, NvmeStatusError } from './errors.ts';
import type { NoPathReason, NoPathTimer } from './no-path.ts';
import type { PathSet } from './paths.ts';
import type { PathSelector } from './selector.ts';
import type { HeadSettings } from './settings.ts';
import type { HeadCounters, HeadPhase, PathEntry, Req, WriteRec } from './types.ts';
import type { WriteOrder } from './write-order.ts';

/** What the dispatcher needs from its head. */
export interface DispatchHost {
  readonly name: string;
  readonly blockSize: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: HeadSettings;
  readonly counters: HeadCounters;
  readonly paths: PathSet;
  readonly selector: PathSelector;
  readonly order: WriteOrder;
  readonly activation: ActiveStandby;
  readonly noPath: NoPathTimer;
  readonly phase: Readonly<HeadPhase>;
  startFailover(from: string, reason: string): void;
  endFailover(to: string): void;
  kick(): void;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Dispatcher {
  readonly #h: DispatchHost;
  // The units the fast path touches on every I/O, held directly (not looked up through the host each time).
  readonly #clock: Clock;
  readonly #settings: HeadSettings;
  readonly #counters: HeadCounters;
  readonly #paths: PathSet;
  readonly #selector: PathSelector;
  readonly #order: WriteOrder;
  readonly #activation: ActiveStandby;
  readonly #noPath: NoPathTimer;
  readonly #phase: Readonly<HeadPhase>;
  readonly #blockSize: number;
  #seq = 0;
  /** The requeue list: queued I/O in submission order. */
  #pending: Req[] = [];
  readonly #inflight = new Set<Req>();
  /** I/O in flight through the fast path (no Req; counted for close() and state()). */
  #fastInflight = 0;
  #closeWaiters: (() => void)[] = [];

  constructor(host: DispatchHost) {
    this.#h = host;
    this.#clock = host.clock;
    this.#settings = host.settings;
    this.#counters = host.counters;
    this.#paths = host.paths;
    this.#selector = host.selector;
    this.#order = host.order;
    this.#activation = host.activation;
    this.#noPath = host.noPath;
    this.#phase = host.phase;
    this.#blockSize = host.blockSize;
  }

  get queued(): number {
    return this.#pending.length;
  }
  get inflight(): number {
    return this.#inflight.size + this.#fastInflight;
  }
  /** Queued writes still waiting for a fence. */
  get fenced(): number {
    let n = 0;
    for (const r of this.#pending) if (r.fence !== null && !this.#h.order.lifted(r)) n++;
    return n;
  }

  submit(io: IoRequest, writeLike: boolean): Promise<Buffer | undefined> {
    return this.#fastSubmit(io, writeLike) ?? this.#slowSubmit(io, writeLike);
  }

  submitRead(io: IoRequest): Promise<Buffer> {
    // The fast path checks the length in its completion (#checkRead); the slow path's result is checked here.
    const fast = this.#fastSubmit(io, false);
    if (fast !== null) return fast as Promise<Buffer>;
    return this.#slowSubmit(io, false).then((data) => this.#checkRead(io, data));
  }

  /** The head closed: fail the queued I/O; resolves when the I/O in flight has ended. */
  close(closedError: () => MultipathError): Promise<void> {
    const queued = this.#pending;
    this.#pending = [];
    for (const req of queued) if (req.state === 'queued') this.#fail(req, closedError());
    this.#h.log.info({ queuedFailed: queued.length, inflight: this.inflight }, 'head closed');
    return this.drained();
  }

  /** Resolves once nothing is in flight. */
  drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closeWaiters.push(resolve));
  }

  #checkRead(io: IoRequest, data: Buffer | undefined): Buffer {
    if (data === undefined || data.length !== io.nlb * this.#blockSize) {
      throw new MultipathError('EIO', `read of ${io.nlb} blocks at ${io.slba} on ${this.#h.name}: the path returned ${data?.length ?? 'no'} bytes`);
    }
    return data;
  }

  #slowSubmit(io: IoRequest, writeLike: boolean): Promise<Buffer | undefined> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const req = newReq(io, writeLike, this.#seq++, this.#h.clock.now(), 'queued', 0, false, resolve, reject);
      this.#h.counters.ios++;
      this.#pending.push(req);
      if (writeLike) this.#h.order.begin(req);
      this.#h.kick();
    });
  }

  /** Direct dispatch (see the file's comment); null when the slow path must take the I/O. */
  #fastSubmit(io: IoRequest, writeLike: boolean): Promise<Buffer | undefined> | null {
    // Only while nothing is going on: no failover or no-path episode, not inside a kick, not closed.
    const phase = this.#phase;
    if (this.#pending.length !== 0 || phase.kicking || phase.failingOver || phase.closed || this.#noPath.open) return null;
    const order = this.#order;
    // A write that overlaps an unfinished write must wait for it: slow path.
    if (writeLike && order.overlapsUnfinished(io)) return null;
    const entry = this.#selector.fast(this.#paths.entries, this.#activation.active);
    if (entry === null) return null;
    const seq = this.#seq++;
    const submittedAt = this.#clock.now();
    const dispatchEpoch = order.epoch;
    const activeAtDispatch = this.#settings.policy === 'active-standby';
    const rec: WriteRec | null = writeLike ? { seq, io } : null;
    if (rec !== null) order.begin(rec);
    const counters = this.#counters;
    counters.ios++;
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
      if (rec !== null) order.end(rec);
      const done = new Promise<Buffer | undefined>((resolve, reject) => {
        const req = newReq(io, writeLike, seq, submittedAt, 'inflight', dispatchEpoch, activeAtDispatch, resolve, reject);
        if (writeLike) order.begin(req);
        this.#handleOutcome(req, entry, outcome);
      });
      return io.kind === 'read' ? done.then((data) => this.#checkRead(io, data)) : done;
    };
    return p.then(
      (outcome) => {
        if (outcome.kind !== 'completed' || outcome.status !== 0) return slow(outcome);
        entry.inflight--;
        this.#fastInflight--;
        if (rec !== null) order.end(rec);
        if (io.kind === 'read') {
          counters.bytesRead += io.nlb * this.#blockSize;
        } else if (io.kind === 'write') {
          counters.bytesWritten += io.nlb * this.#blockSize;
        }
        // Something may wait for this I/O (an overlapping write) or for a path.
        if (this.#pending.length !== 0) this.#h.kick();
        if (phase.closed) this.#maybeClosed();
        return io.kind === 'read' ? this.#checkRead(io, outcome.data) : undefined;
      },
      (e: unknown) => slow({ kind: 'path-error', reason: `submit rejected: ${errText(e)}`, mayHaveExecuted: true }),
    );
  }

  /** Dispatch what can go now, in submission order (the head's kick calls this). */
  drain(): void {
    if (this.#pending.length === 0) return;
    const h = this.#h;
    const keep: Req[] = [];
    let nowhere = false;
    const list = this.#pending;
    this.#pending = keep;
    for (const req of list) {
      if (req.state !== 'queued') continue;
      if (nowhere || !h.order.lifted(req) || h.order.blockedByEarlier(req)) {
        keep.push(req);
        continue;
      }
      const entry = h.selector.forRequest(h.paths.entries, h.activation.active, req.retryOn);
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

  #dispatch(req: Req, entry: PathEntry): void {
    const h = this.#h;
    req.state = 'inflight';
    req.retryOn = null;
    req.dispatchEpoch = h.order.epoch;
    req.activeAtDispatch = h.settings.policy === 'active-standby' && entry === h.activation.active;
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
      (e: unknown) => this.#onOutcome(req, entry, { kind: 'path-error', reason: `submit rejected: ${errText(e)}`, mayHaveExecuted: true }),
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
    const h = this.#h;
    const ok = outcome.kind === 'completed' && outcome.status === 0;
    if (!ok) entry.errors++;
    if (this.#phase.closed) {
      if (ok) this.#succeed(req, entry, outcome);
      else this.#fail(req, new MultipathError('ECLOSED', `${h.name} is closed`));
      this.#maybeClosed();
      return;
    }
    switch (decideDisposition(outcome, req.retries, h.settings.maxRetries)) {
      case 'complete':
        if (outcome.kind === 'completed' && outcome.status === 0) {
          this.#succeed(req, entry, outcome);
        } else if (outcome.kind === 'completed') {
          this.#fail(req, new NvmeStatusError(outcome.status, entry.name, this.#describe(req.io), req.retries));
        }
        break;
      case 'retry':
        req.retries++;
        h.counters.retries++;
        req.retryOn = entry;
        h.log.debug(
          {
            path: entry.name,
            kind: req.io.kind,
            slba: req.io.slba,
            status: outcome.kind === 'completed' ? describeStatus(outcome.status) : undefined,
            retry: req.retries,
          },
          'retrying on the same path',
        );
        this.#requeue(req);
        break;
      case 'failover': {
        const reason = outcome.kind === 'path-error' ? `path error: ${outcome.reason}` : `path status ${describeStatus(outcome.status)}`;
        req.requeues++;
        h.counters.requeues++;
        if (req.writeLike && mayHaveExecuted(outcome)) {
          h.counters.fencedWrites++;
          h.order.fence(req, entry);
        }
        // ANA Inaccessible on our active path: the target made another path active.
        if (h.activation.active === entry && outcome.kind === 'completed' && (outcome.status & 0x7ff) === Status.AnaInaccessible) entry.takenOver = true;
        h.paths.markSuspect(entry, reason);
        if (h.settings.policy !== 'active-standby') h.startFailover(entry.name, reason);
        h.log.debug({ path: entry.name, kind: req.io.kind, slba: req.io.slba, reason, fenced: req.fence !== null }, 'requeued for failover');
        this.#requeue(req);
        break;
      }
    }
    h.kick();
  }

  #requeue(req: Req): void {
    req.state = 'queued';
    // Keep the list in submission order: older I/O first.
    let i = this.#pending.length;
    while (i > 0 && this.#pending[i - 1]!.seq > req.seq) i--;
    this.#pending.splice(i, 0, req);
  }

  #succeed(req: Req, entry: PathEntry, outcome: PathOutcome & { kind: 'completed' }): void {
    const h = this.#h;
    const bytes = req.io.nlb * h.blockSize;
    if (req.io.kind === 'read') h.counters.bytesRead += bytes;
    else if (req.io.kind === 'write') h.counters.bytesWritten += bytes;
    if (this.#phase.failingOver && req.requeues > 0 && h.settings.policy !== 'active-standby') h.endFailover(entry.name);
    this.#finish(req);
    req.resolve(req.io.kind === 'read' ? outcome.data : undefined);
  }

  #fail(req: Req, err: Error): void {
    this.#h.counters.errors++;
    this.#finish(req);
    this.#h.log.warn({ kind: req.io.kind, slba: req.io.slba, nlb: req.io.nlb, code: (err as MultipathError).code, err: err.message }, 'I/O failed');
    req.reject(err);
  }

  #finish(req: Req): void {
    req.state = 'done';
    req.fence = null;
    if (req.writeLike) this.#h.order.end(req);
  }

  #maybeClosed(): void {
    if (this.#phase.closed && this.inflight === 0) {
      const waiters = this.#closeWaiters;
      this.#closeWaiters = [];
      for (const w of waiters) w();
    }
  }

  #describe(io: IoRequest): string {
    return io.kind === 'flush' ? `flush of ${this.#h.name}` : `${io.kind} of ${io.nlb} block(s) at LBA ${io.slba} of ${this.#h.name}`;
  }

  /**
   * Fail the queued I/O that waits only for a path. Writes still waiting for
   * a fence stay until it lifts (then fail here at the next kick), so a write
   * that may still land late is never reported before it no longer can.
   */
  failWaiting(reason: NoPathReason): void {
    if (this.#pending.length === 0) return;
    const h = this.#h;
    const now = h.clock.now();
    const detail =
      reason === 'timeout'
        ? `no_path_timeout ${h.settings.noPathTimeoutMs} ms; paths: ${h.paths.describe().join(', ') || 'none'}`
        : `${h.name} has no path left`;
    const list = this.#pending;
    this.#pending = [];
    for (const req of list) {
      if (req.state !== 'queued') continue;
      if (!h.order.lifted(req)) {
        this.#pending.push(req);
        continue;
      }
      this.#fail(req, new NoPathError(h.name, reason, now - req.submittedAt, detail));
    }
  }
}

function newReq(
  io: IoRequest,
  writeLike: boolean,
  seq: number,
  submittedAt: number,
  state: Req['state'],
  dispatchEpoch: number,
  activeAtDispatch: boolean,
  resolve: (data: Buffer | undefined) => void,
  reject: (err: Error) => void,
): Req {
  return { seq, io, writeLike, submittedAt, state, retries: 0, requeues: 0, retryOn: null, fence: null, dispatchEpoch, activeAtDispatch, resolve, reject };
}
