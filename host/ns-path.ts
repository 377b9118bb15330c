/**
 * NsPath: the Path of host/path.ts for one (controller, namespace). It maps an
 * IoRequest to Read / Write / Compare / Flush / Write Zeroes / Dataset
 * Management on one of the controller's I/O queues and returns how it ended;
 * it never throws. Requests larger than the controller's MDTS (or 65536
 * blocks) are split into several commands and their outcomes combined.
 *
 * quiesced(): every command carries the "generation" in force when it was
 * submitted; quiesced() closes the current generation and waits until no
 * command of it or earlier is left. A command failed by a lost transport
 * (path-error, mayHaveExecuted) is not counted as ended until the controller
 * says that kato has passed since the loss, or it is deleted: until then a
 * write it carried could still land.
 */
import { EventEmitter } from 'node:events';
import { bytesToEui64, bytesToNguid, bytesToUuid, flbasIndex, NsIdType, type IdentifyNamespace, type NsIdDescriptor } from '../shared/identify.ts';
import { AnaState, type AnaStateValue } from '../shared/log-pages.ts';
import {
  compareCommand,
  datasetManagementCommand,
  encodeDsmRanges,
  flushCommand,
  readCommand,
  setNamespaceActiveCommand,
  writeCommand,
  writeZeroesCommand,
  type Sqe,
} from '../shared/sqe.ts';
import { DNR, Status, isAnaError } from '../shared/status.ts';
import type { ControllerState, IoRequest, NamespaceIds, Path, PathEvents, PathOutcome } from './path.ts';
import type { QueueOutcome, SubmitOptions } from './tcp-queue.ts';
import type { Clock } from '../shared/clock.ts';

/** What a path needs from its controller. */
export interface PathController {
  readonly state: ControllerState;
  readonly subnqn: string;
  readonly address: string;
  readonly cntlid: number;
  readonly katoMs: number;
  /** fast_io_fail_tmo passed while reconnecting. */
  readonly failfastExpired: boolean;
  /** Largest data transfer of one command (MDTS), bytes. */
  readonly maxTransferBytes: number;
  readonly ioTimeoutMs: number;
  readonly adminTimeoutMs: number;
  /** The controller's clock (kato fencing of commands lost with a connection). */
  readonly clock: Clock;
  submitIo(sqe: Sqe, opts: SubmitOptions): Promise<QueueOutcome>;
  submitAdmin(sqe: Sqe, opts: SubmitOptions): Promise<QueueOutcome>;
  /** A command came back with an ANA path status: re-read the ANA log. */
  noteAnaError(): void;
  /** Resolves after an ANA log read that started after the call. */
  refreshAna(): Promise<void>;
}

/** What Identify Namespace and the descriptor list say about a namespace. */
export interface NamespaceInfo {
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  readonly nblocks: number;
  readonly anagrpid: number;
  readonly nmic: number;
}

const ZERO16 = Buffer.alloc(16);
const ZERO8 = Buffer.alloc(8);

/** Identity as Linux's nvme_identify_ns_descs + nvme_identify_ns: descriptors first, Identify Namespace fields as fallback. */
export function namespaceInfo(nsid: number, ns: IdentifyNamespace, descs: readonly NsIdDescriptor[]): NamespaceInfo {
  const desc = (t: number) => descs.find((d) => d.nidt === t)?.nid;
  const nguid = desc(NsIdType.Nguid) ?? (ns.nguid.length === 16 ? ns.nguid : ZERO16);
  const eui64 = desc(NsIdType.Eui64) ?? (ns.eui64.length === 8 ? ns.eui64 : ZERO8);
  const uuid = desc(NsIdType.Uuid) ?? ZERO16;
  const csi = desc(NsIdType.Csi)?.[0] ?? 0;
  const lbaf = ns.lbaf[flbasIndex(ns.flbas)] ?? ns.lbaf[0];
  return {
    nsid,
    ids: { nguid: bytesToNguid(nguid), uuid: bytesToUuid(uuid), eui64: bytesToEui64(eui64), csi },
    blockSize: 2 ** (lbaf?.lbads ?? 9),
    nblocks: Number(ns.nsze),
    anagrpid: ns.anagrpid,
    nmic: ns.nmic,
  };
}

export function sameIdentity(a: NamespaceIds, b: NamespaceIds): boolean {
  return a.nguid === b.nguid && a.uuid === b.uuid && a.eui64 === b.eui64 && a.csi === b.csi;
}

const NOT_LIVE: PathOutcome = Object.freeze({ kind: 'path-error', reason: 'controller not live', mayHaveExecuted: false });
const FAILFAST: PathOutcome = Object.freeze({ kind: 'path-error', reason: 'controller reconnecting, fast_io_fail_tmo expired', mayHaveExecuted: false });
const REMOVED: PathOutcome = Object.freeze({ kind: 'path-error', reason: 'path removed', mayHaveExecuted: false });
/** Host-side refusal of a malformed request: a status with DNR, so no path retries it. */
const INVALID: PathOutcome = Object.freeze({ kind: 'completed', status: Status.InvalidField | DNR, result: 0 });
/** Write Zeroes NLB is 16 bits. */
const MAX_NLB = 0x10000;

export class NsPath extends EventEmitter<PathEvents> implements Path {
  readonly name: string;
  readonly nsid: number;
  readonly numaNode = 0;
  #ctrl: PathController;
  #info: NamespaceInfo;
  #ana: AnaStateValue;
  #removed = false;
  #inflight = 0;
  #gen = 0;
  readonly #pending = new Map<number, number>();
  /** Generations of commands failed by a lost transport, not yet fenced. */
  #zombies: number[] = [];
  #waiters: { gen: number; resolve: () => void }[] = [];

  constructor(ctrl: PathController, info: NamespaceInfo, name: string, ana: AnaStateValue = AnaState.Optimized) {
    super();
    this.#ctrl = ctrl;
    this.#info = info;
    this.nsid = info.nsid;
    this.name = name;
    this.#ana = ana;
  }

  get subnqn(): string {
    return this.#ctrl.subnqn;
  }
  get ids(): NamespaceIds {
    return this.#info.ids;
  }
  get blockSize(): number {
    return this.#info.blockSize;
  }
  get nblocks(): number {
    return this.#info.nblocks;
  }
  get anagrpid(): number {
    return this.#info.anagrpid;
  }
  get address(): string {
    return this.#ctrl.address;
  }
  get cntlid(): number {
    return this.#ctrl.cntlid;
  }
  get controllerState(): ControllerState {
    return this.#removed ? 'deleted' : this.#ctrl.state;
  }
  get anaState(): AnaStateValue {
    return this.#ana;
  }
  get inflight(): number {
    return this.#inflight;
  }
  get katoMs(): number {
    return this.#ctrl.katoMs;
  }
  get failfastExpired(): boolean {
    return this.#ctrl.failfastExpired;
  }
  get removed(): boolean {
    return this.#removed;
  }

  // ---------------------------------------------------------------- I/O

  submit(io: IoRequest): Promise<PathOutcome> {
    if (this.#removed) return Promise.resolve(REMOVED);
    const c = this.#ctrl;
    if (c.state !== 'live') return Promise.resolve(c.failfastExpired ? FAILFAST : NOT_LIVE);
    const bs = this.#info.blockSize;
    if (!Number.isSafeInteger(io.slba) || io.slba < 0 || !Number.isSafeInteger(io.nlb) || io.nlb < (io.kind === 'flush' ? 0 : 1))
      return Promise.resolve(INVALID);
    switch (io.kind) {
      case 'read': {
        const bytes = io.nlb * bs;
        if (io.into && io.into.length !== bytes) return Promise.resolve(INVALID);
        if (io.nlb > this.#maxBlocks()) return this.#split(io);
        return this.#run(
          readCommand(this.nsid, io.slba, io.nlb, bytes),
          io.into ? { readLength: bytes, readInto: io.into, timeoutMs: c.ioTimeoutMs } : { readLength: bytes, timeoutMs: c.ioTimeoutMs },
        );
      }
      case 'write':
      case 'compare': {
        if (!io.data || io.data.length !== io.nlb * bs) return Promise.resolve(INVALID);
        if (io.nlb > this.#maxBlocks()) return this.#split(io);
        const sqe =
          io.kind === 'write'
            ? writeCommand(this.nsid, io.slba, io.nlb, io.data.length, false, io.fua === true)
            : compareCommand(this.nsid, io.slba, io.nlb, io.data.length, false);
        return this.#run(sqe, { data: io.data, timeoutMs: c.ioTimeoutMs });
      }
      case 'flush':
        return this.#run(flushCommand(this.nsid), { timeoutMs: c.ioTimeoutMs });
      case 'write-zeroes':
        if (io.nlb > MAX_NLB) return this.#split(io);
        return this.#run(writeZeroesCommand(this.nsid, io.slba, io.nlb, io.deallocate === true), { timeoutMs: c.ioTimeoutMs });
      case 'deallocate': {
        if (io.nlb > 0xffffffff) return Promise.resolve(INVALID);
        const ranges = [{ cattr: 0, nlb: io.nlb, slba: io.slba }];
        return this.#run(datasetManagementCommand(this.nsid, ranges, true), { data: encodeDsmRanges(ranges), timeoutMs: c.ioTimeoutMs });
      }
      default:
        return Promise.resolve(INVALID);
    }
  }

  #maxBlocks(): number {
    return Math.max(1, Math.min(MAX_NLB, Math.floor(this.#ctrl.maxTransferBytes / this.#info.blockSize)));
  }

  async #run(sqe: Sqe, opts: SubmitOptions): Promise<PathOutcome> {
    const gen = this.#gen;
    this.#inflight++;
    this.#pending.set(gen, (this.#pending.get(gen) ?? 0) + 1);
    const r = await this.#ctrl.submitIo(sqe, opts);
    this.#inflight--;
    if (r.kind === 'path-error' && r.mayHaveExecuted && !this.#removed) {
      // It may still be executing on the target: it counts as ended once kato has
      // passed since its connection was lost (the target has dropped the controller
      // by then), or when the controller is deleted. Each command keeps its own
      // clock, so a path that keeps flapping does not hold old commands forever.
      this.#zombies.push(gen);
      const kato = this.#ctrl.katoMs;
      if (kato > 0) this.#ctrl.clock.setTimeout(() => this.#zombieExpired(gen), kato);
    } else this.#ended(gen);
    if (r.kind === 'completed' && r.status !== 0 && isAnaError(r.status)) this.#ctrl.noteAnaError();
    return r;
  }

  /** Several commands for one request; the first failure decides the outcome. */
  async #split(io: IoRequest): Promise<PathOutcome> {
    const bs = this.#info.blockSize;
    const per = io.kind === 'write-zeroes' ? MAX_NLB : this.#maxBlocks();
    const dest = io.kind === 'read' ? (io.into ?? Buffer.allocUnsafe(io.nlb * bs)) : undefined;
    const parts: Promise<PathOutcome>[] = [];
    const t = this.#ctrl.ioTimeoutMs;
    for (let done = 0; done < io.nlb; done += per) {
      const n = Math.min(per, io.nlb - done);
      const slba = io.slba + done;
      const range = [done * bs, (done + n) * bs] as const;
      switch (io.kind) {
        case 'read':
          parts.push(this.#run(readCommand(this.nsid, slba, n, n * bs), { readLength: n * bs, readInto: dest!.subarray(...range), timeoutMs: t }));
          break;
        case 'write':
          parts.push(this.#run(writeCommand(this.nsid, slba, n, n * bs, false, io.fua === true), { data: io.data!.subarray(...range), timeoutMs: t }));
          break;
        case 'compare':
          parts.push(this.#run(compareCommand(this.nsid, slba, n, n * bs, false), { data: io.data!.subarray(...range), timeoutMs: t }));
          break;
        default:
          parts.push(this.#run(writeZeroesCommand(this.nsid, slba, n, io.deallocate === true), { timeoutMs: t }));
      }
    }
    const outcomes = await Promise.all(parts);
    const pathErrors = outcomes.filter((o) => o.kind === 'path-error');
    if (pathErrors.length > 0) {
      const sentAny = outcomes.some((o) => o.kind === 'completed' || o.mayHaveExecuted);
      return { kind: 'path-error', reason: pathErrors[0]!.reason, mayHaveExecuted: sentAny };
    }
    const failed = outcomes.find((o) => o.kind === 'completed' && o.status !== 0);
    if (failed) return failed;
    return { kind: 'completed', status: 0, result: 0, data: dest };
  }

  #zombieExpired(gen: number): void {
    const i = this.#zombies.indexOf(gen);
    if (i < 0) return; // already ended (controller deleted, or fenced())
    this.#zombies.splice(i, 1);
    this.#ended(gen);
  }

  #ended(gen: number): void {
    const left = (this.#pending.get(gen) ?? 1) - 1;
    if (left > 0) {
      this.#pending.set(gen, left);
      return;
    }
    this.#pending.delete(gen);
    this.#wake();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    let oldest = Infinity;
    for (const g of this.#pending.keys()) if (g < oldest) oldest = g;
    const still: { gen: number; resolve: () => void }[] = [];
    for (const w of this.#waiters) {
      // After the ending command's own outcome has been delivered.
      if (w.gen < oldest) queueMicrotask(w.resolve);
      else still.push(w);
    }
    this.#waiters = still;
  }

  quiesced(): Promise<void> {
    const gen = this.#gen++;
    if (this.#removed) return Promise.resolve();
    for (const g of this.#pending.keys()) {
      if (g <= gen) return new Promise((resolve) => this.#waiters.push({ gen, resolve }));
    }
    return Promise.resolve();
  }

  async setActive(): Promise<PathOutcome> {
    if (this.#removed) return REMOVED;
    const c = this.#ctrl;
    if (c.state !== 'live') return c.failfastExpired ? FAILFAST : NOT_LIVE;
    const r = await c.submitAdmin(setNamespaceActiveCommand(this.nsid), { timeoutMs: c.adminTimeoutMs });
    // The ANA state this path reports follows at once, not on the next event.
    if (r.kind === 'completed' && r.status === 0) await c.refreshAna();
    return r;
  }

  // ---------------------------------------------------------------- driven by the controller

  /** @internal The controller changed state: the head re-evaluates. */
  notifyChange(): void {
    if (!this.#removed) this.emit('change');
  }

  /** @internal ANA state from the ANA log. */
  setAnaState(state: AnaStateValue): void {
    if (state === this.#ana) return;
    this.#ana = state;
    this.notifyChange();
  }

  /** @internal Size (or other non-identity data) changed on a rescan. */
  update(info: NamespaceInfo): void {
    const changed = info.nblocks !== this.#info.nblocks || info.blockSize !== this.#info.blockSize || info.anagrpid !== this.#info.anagrpid;
    this.#info = info;
    if (changed) this.notifyChange();
  }

  /** @internal kato has passed since the transport was lost: commands it failed can no longer land. */
  fenced(): void {
    const z = this.#zombies;
    if (z.length === 0) return;
    this.#zombies = [];
    for (const gen of z) this.#ended(gen);
  }

  /** @internal The path is gone for good. */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    this.#zombies = [];
    this.#pending.clear();
    for (const w of this.#waiters.splice(0)) w.resolve();
    this.emit('removed');
  }
}
