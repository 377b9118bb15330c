/**
 * A controller: created by an admin-queue Connect, it owns its queues, its
 * registers (CC, CSTS), features, the asynchronous event machinery, the error
 * and changed-namespace logs, and a traffic-based keep-alive timer.
 *
 * Its life ends in one place, destroy(): admin connection lost, keep-alive
 * expired, port down, or target shutdown. Every queue is closed there and the
 * subsystem is told (implicit promotion hangs off that).
 */
import { AerResultValue, AsyncEventConfigBit } from '../shared/features.ts';
import { LogPageId, type ErrorLogEntry } from '../shared/log-pages.ts';
import { ShutdownNotification, ShutdownStatus, decodeCc, encodeCsts } from '../shared/fabrics.ts';
import { Status, withDnr } from '../shared/status.ts';
import { realClock, type Clock, type TimerHandle } from '../shared/clock.ts';
import type { Logger } from './logger.ts';
import type { Port } from './port.ts';
import type { Completion } from './request.ts';
import type { Subsystem } from './subsystem.ts';
import type { DiscoveryService } from './discovery.ts';

export const ERROR_LOG_ENTRIES = 128;
/** Asynchronous Event Request Limit, 0's based (AERL 3: four outstanding). */
export const AERL = 3;
/** Abort Command Limit, 0's based. */
export const ACL = 3;
/** Keep-alive used when a discovery controller connects with KATO 0 (as nvmet). */
export const DISCOVERY_DEFAULT_KATO_MS = 120_000;
/** Longest delay a Node timer takes. */
const MAX_TIMER_MS = 0x7fffffff;

export interface ControllerQueue {
  readonly qid: number;
  readonly remoteAddress: string;
  readonly sqsize: number;
  /** Commands received and not yet completed. */
  readonly outstanding: number;
  /** Close the connection (the queue is gone). */
  destroy(reason: string): void;
  /** Abort a command that has not started executing; true if it was. */
  abortPending(cid: number): boolean;
}

export type AsyncEventKind = 'ana-change' | 'namespace-attribute' | 'discovery-change';

const EVENT: Record<AsyncEventKind, { aecBit: number; result: number; lid: number }> = {
  'ana-change': { aecBit: AsyncEventConfigBit.AnaChange, result: AerResultValue.AnaChange, lid: LogPageId.Ana },
  'namespace-attribute': {
    aecBit: AsyncEventConfigBit.NamespaceAttribute,
    result: AerResultValue.NamespaceAttributeChanged,
    lid: LogPageId.ChangedNamespaceList,
  },
  'discovery-change': {
    aecBit: AsyncEventConfigBit.DiscoveryLogChange,
    result: AerResultValue.DiscoveryLogChange,
    lid: LogPageId.Discovery,
  },
};

export interface ControllerOptions {
  cntlid: number;
  kind: 'io' | 'discovery';
  subsystem: Subsystem | null;
  discovery: DiscoveryService | null;
  port: Port;
  hostnqn: string;
  hostid: Buffer;
  katoMs: number;
  maxIoQueues: number;
  mqes: number;
  log: Logger;
  /** Keep-alive timing and timestamps (default: real time). */
  clock?: Clock;
  /** Called once, when the controller is gone. */
  onGone: (ctrl: Controller, reason: string) => void;
}

export class Controller {
  readonly cntlid: number;
  readonly kind: 'io' | 'discovery';
  readonly subsystem: Subsystem | null;
  readonly discovery: DiscoveryService | null;
  readonly port: Port;
  readonly hostnqn: string;
  readonly hostid: Buffer;
  /** Wall-clock creation time (ms since the epoch). */
  readonly createdAt: number;
  readonly log: Logger;
  readonly maxIoQueues: number;
  readonly mqes: number;
  readonly queues = new Map<number, ControllerQueue>();

  cc = 0;
  csts = 0;
  katoMs: number;
  /** Async Event Configuration (Set Features 0Bh). */
  aec = 0;
  /** Volatile write cache enabled. */
  wce = true;
  /** Granted by Set Features Number of Queues (1-based counts); null until then. */
  grantedQueues: { nsqr: number; ncqr: number } | null = null;

  readonly #onGone: (ctrl: Controller, reason: string) => void;
  #gone = false;
  readonly #clock: Clock;
  #kaTimer: TimerHandle | null = null;
  #lastTraffic: number;
  /** Parked Asynchronous Event Requests, oldest first, with the command id each holds on the admin queue. */
  readonly #aers: { readonly cid: number; readonly resolve: (c: Completion) => void }[] = [];
  /** Events raised with no AER outstanding, delivered when one arrives. */
  readonly #pendingEvents: number[] = [];
  /** Log pages whose event was sent and not yet cleared by reading the log. */
  readonly #maskedLogs = new Set<number>();
  readonly changedNamespaces = new Set<number>();
  #errorCount = 0n;
  readonly #errors: ErrorLogEntry[] = [];
  readonly counters = { commands: 0n, errors: 0n };

  constructor(o: ControllerOptions) {
    this.cntlid = o.cntlid;
    this.kind = o.kind;
    this.subsystem = o.subsystem;
    this.discovery = o.discovery;
    this.port = o.port;
    this.hostnqn = o.hostnqn;
    this.hostid = o.hostid;
    this.katoMs = o.katoMs;
    this.maxIoQueues = o.maxIoQueues;
    this.mqes = o.mqes;
    this.log = o.log.child({ cntlid: o.cntlid, port: o.port.portid });
    this.#onGone = o.onGone;
    this.#clock = o.clock ?? realClock;
    this.createdAt = this.#clock.wallNow();
    this.#lastTraffic = this.#clock.now();
    this.#armKeepAlive();
  }

  get isGone(): boolean {
    return this.#gone;
  }
  get ready(): boolean {
    return (this.csts & 1) === 1;
  }
  get nqn(): string {
    return this.subsystem?.nqn ?? this.discovery?.nqn ?? '';
  }

  // ---------------------------------------------------------------- keep-alive

  /** Any command counts as traffic (CTRATT.TBKAS): the host may skip Keep Alive while busy. */
  touch(): void {
    this.#lastTraffic = this.#clock.now();
  }

  setKato(ms: number): void {
    this.katoMs = ms;
    this.#armKeepAlive();
  }

  #armKeepAlive(): void {
    const clock = this.#clock;
    clock.clearTimeout(this.#kaTimer);
    this.#kaTimer = null;
    if (this.katoMs <= 0 || this.#gone) return;
    this.#lastTraffic = clock.now();
    const check = () => {
      const idle = clock.now() - this.#lastTraffic;
      if (idle >= this.katoMs) {
        this.log.warn({ kato: this.katoMs, idleMs: idle, hostnqn: this.hostnqn }, 'keep-alive timer expired: tearing the controller down');
        this.destroy('keep-alive timeout');
        return;
      }
      // KATO is 32 bits of ms; Node timers take at most 2^31-1 (longer ones fire after 1 ms): check again later.
      this.#kaTimer = clock.setTimeout(check, Math.min(this.katoMs - idle, MAX_TIMER_MS));
    };
    this.#kaTimer = clock.setTimeout(check, Math.min(this.katoMs, MAX_TIMER_MS));
  }

  // ---------------------------------------------------------------- registers

  /** Property Set of CC: the enable and shutdown handshakes. */
  setCc(value: number): void {
    const prev = decodeCc(this.cc);
    const next = decodeCc(value);
    this.cc = value >>> 0;
    if (next.en && !prev.en) {
      // We support the NVM command set only, 4 KiB pages, 64/16-byte entries.
      const valid = next.css === 0 && next.mps === 0 && next.iosqes === 6 && next.iocqes === 4;
      if (valid) this.csts = encodeCsts({ rdy: true, cfs: false, shst: ShutdownStatus.Normal, nssro: false });
      else {
        this.log.warn({ cc: value.toString(16) }, 'CC rejected (unsupported CSS/MPS/IOSQES/IOCQES): CSTS.CFS set');
        this.csts = encodeCsts({ rdy: false, cfs: true, shst: ShutdownStatus.Normal, nssro: false });
      }
    } else if (!next.en && prev.en) {
      this.log.info('controller disabled (CC.EN 1 -> 0): I/O queues deleted');
      this.csts = 0;
      for (const [qid, q] of this.queues) if (qid !== 0) q.destroy('controller disabled');
    }
    if (next.shn !== ShutdownNotification.None && prev.shn === ShutdownNotification.None) {
      this.csts = (this.csts & ~0xc) | (ShutdownStatus.Occurring << 2);
      void this.#shutdownStores().finally(() => {
        this.csts = (this.csts & ~0xc) | (ShutdownStatus.Complete << 2);
        this.log.info('shutdown complete (CSTS.SHST = 10b)');
      });
    } else if (next.shn === ShutdownNotification.None && prev.shn !== ShutdownNotification.None) {
      this.csts &= ~0xc;
    }
  }

  async #shutdownStores(): Promise<void> {
    if (!this.subsystem) return;
    await Promise.allSettled([...this.subsystem.namespaces.values()].map((ns) => ns.store.flush()));
  }

  // ---------------------------------------------------------------- async events

  /**
   * Park an AER; resolves when an event is delivered or the controller goes.
   * `cid` is the command id it holds, so that the host can abandon it (abandonAer).
   */
  parkAer(cid = -1): Promise<Completion> | Completion {
    if (this.#aers.length > AERL) return { status: withDnr(Status.AsyncEventRequestLimitExceeded) };
    const pending = this.#pendingEvents.shift();
    if (pending !== undefined) return { status: 0, result: pending };
    return new Promise((resolve) => this.#aers.push({ cid, resolve }));
  }

  /**
   * The host reused the command id of a parked AER (SPDK drops its AERs
   * locally at shutdown and reuses their ids): the AER leaves the list without
   * taking an event, so no event is lost to a completion the host would
   * ignore, and it no longer counts against AERL. Its request ends with
   * nothing sent (core.ts admitRequest). False when no AER holds that id.
   */
  abandonAer(cid: number): boolean {
    const i = this.#aers.findIndex((a) => a.cid === cid);
    if (i === -1) return false;
    const [aer] = this.#aers.splice(i, 1);
    aer!.resolve({ status: Status.AbortRequested });
    return true;
  }

  /**
   * Raise a notice. Delivered only if the host enabled it (AEC) and no event
   * for the same log is still unacknowledged (masked until the log is read
   * without RAE).
   */
  raiseEvent(kind: AsyncEventKind): boolean {
    const ev = EVENT[kind];
    if (this.#gone || (this.aec & ev.aecBit) === 0 || this.#maskedLogs.has(ev.lid)) return false;
    this.#maskedLogs.add(ev.lid);
    const aer = this.#aers.shift();
    if (aer) aer.resolve({ status: 0, result: ev.result });
    else this.#pendingEvents.push(ev.result);
    this.log.debug({ event: kind }, 'asynchronous event');
    return true;
  }

  /** A log was read without RAE: its event type is unmasked. */
  logRead(lid: number, rae: boolean): void {
    if (!rae) this.#maskedLogs.delete(lid);
  }

  get outstandingAers(): number {
    return this.#aers.length;
  }

  // ---------------------------------------------------------------- logs

  recordError(e: { sqid: number; cid: number; status: number; errorLocation?: number; lba?: number; nsid?: number; opcode: number }): void {
    this.#errorCount += 1n;
    this.counters.errors += 1n;
    this.#errors.unshift({
      errorCount: this.#errorCount,
      sqid: e.sqid,
      cid: e.cid,
      status: e.status,
      phaseTag: false,
      parameterErrorLocation: e.errorLocation ?? 0xffff,
      // A JS number: an SLBA above 2^53 may have rounded up to 2^64, which the 64-bit field cannot hold.
      lba: e.lba === undefined || !(e.lba >= 0) ? 0n : e.lba >= 2 ** 64 ? 0xffffffffffffffffn : BigInt(Math.floor(e.lba)),
      nsid: e.nsid ?? 0,
      vendorSpecificInfo: 0,
      trtype: 3,
      csi: 0,
      opcode: e.opcode,
      commandSpecificInfo: 0n,
      trtypeSpecificInfo: 0,
      logPageVersion: 1,
    });
    if (this.#errors.length > ERROR_LOG_ENTRIES) this.#errors.length = ERROR_LOG_ENTRIES;
  }

  errorLog(): readonly ErrorLogEntry[] {
    return this.#errors;
  }

  // ---------------------------------------------------------------- life

  /** Tear down: close every queue, fail parked AERs, tell the subsystem. */
  destroy(reason: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#clock.clearTimeout(this.#kaTimer);
    this.#kaTimer = null;
    for (const aer of this.#aers.splice(0)) aer.resolve({ status: Status.AbortedSqDeleted });
    for (const q of [...this.queues.values()]) q.destroy(reason);
    this.queues.clear();
    this.log.info({ reason, hostnqn: this.hostnqn }, 'controller gone');
    this.#onGone(this, reason);
  }
}
