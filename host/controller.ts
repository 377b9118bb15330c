/**
 * An NVMe/TCP controller on the host side: admin queue plus N I/O queues,
 * each on its own TCP connection, and the namespaces it reports as NsPaths.
 *
 * Life cycle (controller-state.ts holds the transition table):
 *   connect():  new → connecting → (admin Connect with KATO, enable handshake,
 *               Identify, Number of Queues, Async Event Config, namespace scan,
 *               ANA log, I/O queue Connects) → live.
 *   live:       Keep Alive every kato/2; AERs kept posted and handled (ANA
 *               change → re-read the ANA log; namespace attribute change →
 *               changed-namespace log and rescan); an ANA path status from I/O
 *               also re-reads the ANA log.
 *   error:      a command timeout, transport error or close, TermReq, or a
 *               failed Keep Alive ends every queue → resetting (every command in
 *               flight fails as a path error) → connecting; a reconnect every
 *               reconnect_delay, at most ceil(ctrl_loss_tmo / reconnect_delay)
 *               times (Linux's max_reconnects), then deleting → deleted and
 *               every path emits 'removed'.
 *   disconnect(): deleting, wait for I/O in flight, CC.SHN = 01b and wait for
 *               CSTS.SHST = 10b, close, deleted.
 *   reauthenticate(): DH-HMAC-CHAP again on the live queues (admin first, then
 *               every I/O queue that authenticated at connect, in parallel)
 *               while I/O goes on, as Linux after a write to dhchap_secret.
 *               The keys given replace the connect options' for every later
 *               reconnect, whatever the outcome (Linux stores them first);
 *               a failure is reported and changes no state (Linux: "a
 *               soft-state") unless the target then ends the association.
 *
 * While not live, paths refuse I/O at once with a path error (no queueing), so
 * the multipath head can use another path. fast_io_fail_tmo only changes the
 * reason given (and emits 'change' when it expires).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { CNTLID_DYNAMIC, type Cap } from '../shared/fabrics.ts';
import { AerInfo, AerType, FeatureId, decodeAerResult, decodeNumberOfQueues, encodeAsyncEventConfig, encodeNumberOfQueues } from '../shared/features.ts';
import {
  Cmic,
  Cns,
  MAX_NAMESPACE_LIST,
  Nstat,
  Oaes,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeIdentifyNamespaceCsIndependent,
  nvmeVersion,
  decodeNamespaceList,
  decodeNsIdDescriptors,
  type IdentifyController,
} from '../shared/identify.ts';
import {
  AnaState,
  CHANGED_NS_LIST_SIZE,
  LogPageId,
  decodeAnaLog,
  decodeChangedNamespaceList,
  isAnaState,
  type AnaLog,
  type AnaStateValue,
} from '../shared/log-pages.ts';
import { asyncEventRequestCommand, keepAliveCommand, setFeaturesCommand, type Sqe } from '../shared/sqe.ts';
import { ControllerStateMachine } from './controller-state.ts';
import { enableController, getLogPage, identify, mustComplete, shutdownController } from './admin.ts';
import { HostError } from './errors.ts';
import { NsPath, namespaceInfo, sameIdentity, type NamespaceInfo, type PathController } from './ns-path.ts';
import {
  ADMIN_QUEUE_DEPTH,
  parseReauthKeys,
  reauthKeysInvalid,
  resolveConnectOptions,
  type ConnectOptions,
  type ReauthKeys,
  type ResolvedConnectOptions,
} from './options.ts';
import type { ControllerState } from './path.ts';
import { TcpQueue, type QueueOutcome, type SubmitOptions } from './tcp-queue.ts';
import { authenticateIfRequired, reauthenticateQueue, type HostAuthParams, type QueueAuthRecord } from './auth.ts';
import type { DhchapKey } from '../shared/auth.ts';
import { sleepOn, type Clock, type TimerHandle } from '../shared/clock.ts';
import { hostContext, type HostContext, type HostTransportStats } from './context.ts';

export interface ControllerEvents {
  /** Every state change. */
  state: [to: ControllerState, from: ControllerState];
  'path-added': [path: NsPath];
  'path-removed': [path: NsPath];
  /** The ANA log was read and applied. */
  'ana-change': [];
  /** An error started a reset (transport loss, timeout, keep-alive failure). */
  reset: [error: HostError];
}

const NSID_ALL = 0xffffffff;
/** Shutdown must complete within this (Linux's default shutdown_timeout is 5 s). */
const SHUTDOWN_TIMEOUT_MS = 5000;
const NOT_LIVE_OUTCOME: QueueOutcome = Object.freeze({ kind: 'path-error', reason: 'controller not live', mayHaveExecuted: false });

let nextInstance = 0;
const subsystemIndex = new Map<string, number>();
function subsystemInstance(nqn: string): number {
  let i = subsystemIndex.get(nqn);
  if (i === undefined) {
    i = subsystemIndex.size;
    subsystemIndex.set(nqn, i);
  }
  return i;
}

export class Controller extends EventEmitter<ControllerEvents> implements PathController {
  readonly options: ResolvedConnectOptions;
  readonly instance: number;
  readonly name: string;
  readonly address: string;
  readonly log: Logger;
  readonly #ctx: HostContext;
  readonly #sm: ControllerStateMachine;
  #admin: TcpQueue | null = null;
  #io: TcpQueue[] = [];
  #rr = 0;
  readonly #paths = new Map<number, NsPath>();
  #id: IdentifyController | null = null;
  #cap: Cap | null = null;
  #vs = 0;
  #cntlid = 0;
  #maxTransfer = Number.MAX_SAFE_INTEGER;
  #kaTimer: TimerHandle | null = null;
  #reconnectTimer: TimerHandle | null = null;
  #failfastTimer: TimerHandle | null = null;
  #fenceTimer: TimerHandle | null = null;
  #failfastExpired = false;
  #nrReconnects = 0;
  #lastError: HostError | null = null;
  // DH-HMAC-CHAP keys of later transactions: the connect options' until reauthenticate() replaces them.
  #dhchapKey: DhchapKey | null;
  #dhchapCtrlKey: DhchapKey | null;
  /** What each queue of the association negotiated (absent: it did not authenticate). */
  readonly #queueAuth = new WeakMap<TcpQueue, QueueAuthRecord>();
  #reauthChain: Promise<unknown> = Promise.resolve();
  #reauthCount = 0;
  // AER-driven work, serialized and coalesced.
  #working = false;
  #scanPending = false;
  #anaPending = false;
  #anaWaiters: (() => void)[] = [];
  readonly #onQueueClose = (err: HostError): void => this.#errorRecovery(err);

  private constructor(options: ResolvedConnectOptions, ctx: HostContext) {
    super();
    this.options = options;
    this.#ctx = ctx;
    this.instance = options.instance ?? nextInstance++;
    this.name = `nvme${this.instance}`;
    this.address = `tcp traddr=${options.traddr} trsvcid=${options.trsvcid}`;
    this.log = options.logger.child({ ctrl: this.name, subnqn: options.subnqn, traddr: options.traddr, trsvcid: options.trsvcid });
    this.#sm = new ControllerStateMachine((to, from) => this.#stateChanged(to, from));
    this.#dhchapKey = options.dhchapKey;
    this.#dhchapCtrlKey = options.dhchapCtrlKey;
  }

  /**
   * Connect a controller; resolves once it is live with its namespaces
   * scanned, or throws a HostError. `ctx` carries the clock, the feature
   * switches and the counters (a session passes its own; default: real time,
   * every switch on, counters of this controller alone).
   */
  static async connect(options: ConnectOptions, ctx: HostContext = hostContext()): Promise<Controller> {
    const c = new Controller(resolveConnectOptions(options), ctx);
    c.#sm.change('connecting');
    try {
      await c.#setup();
    } catch (err) {
      c.#delete(err instanceof HostError ? err : new HostError('CONNECTION_FAILED', (err as Error).message, { cause: err }));
      throw err;
    }
    if (c.state !== 'connecting') throw c.#lastError ?? new HostError('CONTROLLER_DELETED', 'controller deleted while connecting');
    c.#goLive();
    return c;
  }

  // ---------------------------------------------------------------- state

  get state(): ControllerState {
    return this.#sm.state;
  }
  get clock(): Clock {
    return this.#ctx.clock;
  }
  /** Transport counters of the context this controller was connected with (shared with its session). */
  get transportStats(): Readonly<HostTransportStats> {
    return this.#ctx.stats;
  }
  get subnqn(): string {
    return this.options.subnqn;
  }
  get cntlid(): number {
    return this.#cntlid;
  }
  get katoMs(): number {
    return this.options.katoMs;
  }
  get ioTimeoutMs(): number {
    return this.options.ioTimeoutMs;
  }
  get adminTimeoutMs(): number {
    return this.options.adminTimeoutMs;
  }
  get failfastExpired(): boolean {
    return this.#failfastExpired;
  }
  get maxTransferBytes(): number {
    return this.#maxTransfer;
  }
  /** Identify Controller data of the current association. */
  get identity(): IdentifyController | null {
    return this.#id;
  }
  get cap(): Cap | null {
    return this.#cap;
  }
  get version(): number {
    return this.#vs;
  }
  get ioQueueCount(): number {
    return this.#io.length;
  }
  get paths(): NsPath[] {
    return [...this.#paths.values()];
  }
  path(nsid: number): NsPath | undefined {
    return this.#paths.get(nsid);
  }
  /** The error that started the last reset, if any. */
  get lastError(): HostError | null {
    return this.#lastError;
  }
  /**
   * DH-HMAC-CHAP as the admin queue of the current association last
   * negotiated it (at connect or re-authentication), or null when it did not
   * authenticate. `reauthentications` counts the completed re-authentications.
   */
  get authentication(): (QueueAuthRecord & { readonly ioQueues: number; readonly reauthentications: number }) | null {
    const a = this.#admin ? this.#queueAuth.get(this.#admin) : undefined;
    if (!a) return null;
    return { ...a, ioQueues: this.#io.filter((q) => this.#queueAuth.has(q)).length, reauthentications: this.#reauthCount };
  }

  #stateChanged(to: ControllerState, from: ControllerState): void {
    this.log.info({ from, to }, 'controller state');
    if (to === 'connecting' && from === 'resetting') this.#startFailfast();
    if (to === 'live') this.#stopFailfast();
    this.emit('state', to, from);
    for (const p of this.#paths.values()) p.notifyChange();
  }

  // ---------------------------------------------------------------- submission (paths)

  submitIo(sqe: Sqe, opts: SubmitOptions): Promise<QueueOutcome> {
    const qs = this.#io;
    if (this.#sm.state !== 'live' || qs.length === 0) return Promise.resolve(NOT_LIVE_OUTCOME);
    let q: TcpQueue;
    if (this.options.ioQueuePolicy === 'round-robin' || qs.length === 1) {
      q = qs[this.#rr]!;
      this.#rr = this.#rr + 1 >= qs.length ? 0 : this.#rr + 1;
    } else {
      q = qs[0]!;
      for (let i = 1; i < qs.length; i++) if (qs[i]!.inflight < q.inflight) q = qs[i]!;
    }
    return q.submit(sqe, opts);
  }

  submitAdmin(sqe: Sqe, opts: SubmitOptions): Promise<QueueOutcome> {
    const a = this.#admin;
    if (this.#sm.state !== 'live' || !a) return Promise.resolve(NOT_LIVE_OUTCOME);
    return a.submit(sqe, opts);
  }

  /**
   * Host-side faults on this controller's connections (admin and I/O queues):
   * 'close' resets them, 'blackhole' stops all traffic with the sockets left
   * open, 'clear' ends a blackhole.
   */
  injectFault(kind: 'close' | 'blackhole' | 'clear'): void {
    const queues = [...(this.#admin ? [this.#admin] : []), ...this.#io];
    this.log.warn({ fault: kind, queues: queues.length }, `host-side fault: ${kind}`);
    for (const q of queues) {
      if (kind === 'close') q.drop();
      else q.blackhole(kind === 'blackhole');
    }
  }

  noteAnaError(): void {
    if (!this.#hasAna()) return;
    this.#anaPending = true;
    void this.#kick();
  }

  refreshAna(): Promise<void> {
    if (!this.#hasAna() || this.state !== 'live') return Promise.resolve();
    return new Promise((resolve) => {
      this.#anaWaiters.push(resolve);
      this.#anaPending = true;
      void this.#kick();
    });
  }

  #hasAna(): boolean {
    return this.#id !== null && (this.#id.cmic & Cmic.Ana) !== 0;
  }

  // ---------------------------------------------------------------- setup

  /** One association: admin queue, enable, identify, features, scan, ANA, I/O queues. */
  async #setup(): Promise<void> {
    const o = this.options;
    const t = o.adminTimeoutMs;
    const common = {
      host: o.traddr,
      port: o.trsvcid,
      hdgst: o.hdrDigest,
      ddgst: o.dataDigest,
      connectTimeoutMs: o.connectTimeoutMs,
      subnqn: o.subnqn,
      hostnqn: o.hostnqn,
      hostid: o.hostid,
      cattr: o.disableSqflow ? 0x04 : 0,
      clock: this.#ctx.clock,
      directReads: this.#ctx.directReads,
      stats: this.#ctx.stats,
    };
    const admin = await TcpQueue.open({
      ...common,
      qid: 0,
      depth: ADMIN_QUEUE_DEPTH,
      inCapsuleSize: 0,
      cntlid: CNTLID_DYNAMIC,
      katoMs: o.katoMs,
      log: this.log,
    });
    this.#admin = admin;
    admin.once('close', this.#onQueueClose);
    this.#cntlid = admin.cntlid;
    const adminAuth = await authenticateIfRequired(admin, this.#authParams());
    if (adminAuth) this.#queueAuth.set(admin, adminAuth);
    const { cap, vs } = await enableController(admin, t);
    this.#cap = cap;
    this.#vs = vs;
    const id = decodeIdentifyController(await identify(admin, Cns.Controller, 0, t));
    checkIdentify(id, admin.cntlid, o.subnqn);
    this.#id = id;
    this.#maxTransfer = id.mdts === 0 ? Number.MAX_SAFE_INTEGER : 4096 * 2 ** id.mdts;
    const depth = Math.min(o.queueSize, cap.mqes + 1);
    const nq = await mustComplete(
      admin,
      setFeaturesCommand(FeatureId.NumberOfQueues, encodeNumberOfQueues({ submissionQueues: o.nrIoQueues, completionQueues: o.nrIoQueues })),
      { timeoutMs: t },
      'Set Features Number of Queues',
    );
    const granted = decodeNumberOfQueues(nq.result);
    const nIo = Math.min(o.nrIoQueues, granted.submissionQueues, granted.completionQueues);
    const aec = encodeAsyncEventConfig({
      anaChange: (id.oaes & Oaes.AnaChange) !== 0,
      namespaceAttribute: (id.oaes & Oaes.NamespaceAttribute) !== 0,
    });
    if (aec !== 0) await mustComplete(admin, setFeaturesCommand(FeatureId.AsyncEventConfig, aec), { timeoutMs: t }, 'Set Features Async Event Config');
    const namespaces = await this.#scanNamespaces(admin);
    const ana = (id.cmic & Cmic.Ana) !== 0 ? await this.#readAnaLog(admin) : null;
    const ioccsz = Math.max(0, id.ioccsz * 16 - 64);
    const opened = await Promise.allSettled(
      Array.from({ length: nIo }, (_, i) =>
        TcpQueue.open({ ...common, qid: i + 1, depth, inCapsuleSize: ioccsz, cntlid: admin.cntlid, katoMs: 0, log: this.log }).then((q) =>
          authenticateIfRequired(q, this.#authParams()).then(
            (rec) => {
              if (rec) this.#queueAuth.set(q, rec);
              return q;
            },
            (err: unknown) => {
              q.close('authentication failed');
              throw err;
            },
          ),
        ),
      ),
    );
    const queues = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed || admin.closed) {
      for (const q of queues) q.close('association setup failed');
      throw failed ? failed.reason : (admin.error ?? new HostError('CONNECTION_CLOSED', 'admin queue closed during setup'));
    }
    this.#io = queues;
    this.#rr = 0;
    for (const q of queues) q.once('close', this.#onQueueClose);
    this.#applyNamespaces(namespaces);
    if (ana) this.#applyAna(ana);
    this.log.info({ cntlid: admin.cntlid, ioQueues: nIo, depth, namespaces: namespaces.size, mdts: id.mdts }, 'association established');
  }

  #authParams(): HostAuthParams {
    const o = this.options;
    return { hostnqn: o.hostnqn, subnqn: o.subnqn, key: this.#dhchapKey, ctrlKey: this.#dhchapCtrlKey, timeoutMs: o.adminTimeoutMs };
  }

  // ---------------------------------------------------------------- re-authentication

  /**
   * Re-authenticate the live association (Linux: write dhchap_secret or
   * dhchap_ctrl_secret in sysfs). `dhchapKey` / `dhchapCtrlKey` replace the
   * keys in use (absent: keep; `dhchapCtrlKey: null`: unidirectional from now
   * on); they are checked first and nothing changes when one is invalid.
   * Then, as Linux's dhchap_auth_work: the admin queue, and only when it
   * succeeded, every I/O queue that authenticated at connect, all at once,
   * with I/O going on. Resolves with what each queue negotiated; rejects
   * with HostError AUTH_FAILED naming the queues that failed. A failure
   * leaves the controller as it is (the target may end the association:
   * nvmet does when the admin queue fails, and error recovery then
   * reconnects with the new keys). Not live: only the keys change, and the
   * next reconnect uses them. Calls run one after another.
   */
  async reauthenticate(keys: ReauthKeys = {}): Promise<ReauthReport> {
    const given = parseReauthKeys(keys);
    // Merged with the keys in use when its turn comes, so that a queued call builds on the one before it.
    const run = this.#reauthChain.then(() => this.#reauthenticate(given));
    this.#reauthChain = run.catch(() => undefined);
    return run;
  }

  async #reauthenticate(given: { key?: DhchapKey; ctrlKey?: DhchapKey | null }): Promise<ReauthReport> {
    const key = given.key ?? this.#dhchapKey;
    const ctrlKey = given.ctrlKey === undefined ? this.#dhchapCtrlKey : given.ctrlKey;
    if (!key) throw reauthKeysInvalid(['dhchapKey: the controller has no DH-HMAC-CHAP key: give one (re-authentication needs the host key)']);
    const keys = { key, ctrlKey };
    this.#dhchapKey = key;
    this.#dhchapCtrlKey = ctrlKey;
    const admin = this.#admin;
    if (this.state !== 'live' || !admin) {
      this.log.info({ state: this.state }, 'DH-HMAC-CHAP keys replaced; not live: the next reconnect authenticates with them');
      return { reauthenticated: false, queues: [] };
    }
    this.log.info({ bidirectional: keys.ctrlKey !== null }, 're-authenticating controller');
    const params = { ...this.#authParams(), key: keys.key };
    try {
      this.#queueAuth.set(admin, await reauthenticateQueue(admin, params));
    } catch (err) {
      const e = asHostError(err);
      this.log.warn({ qid: 0, err: e.message }, 'DH-HMAC-CHAP re-authentication failed on the admin queue; I/O queues not re-authenticated');
      throw new HostError('AUTH_FAILED', `re-authentication failed: ${e.message}`, { cause: e, ...(e.status !== undefined ? { status: e.status } : {}) });
    }
    const ioQueues = this.#io.filter((q) => this.#queueAuth.has(q));
    const settled = await Promise.allSettled(ioQueues.map((q) => reauthenticateQueue(q, params)));
    const failures: string[] = [];
    settled.forEach((r, i) => {
      const q = ioQueues[i]!;
      if (r.status === 'fulfilled') this.#queueAuth.set(q, r.value);
      else {
        const msg = asHostError(r.reason).message;
        failures.push(msg);
        // A soft state, as Linux: the queue keeps its earlier authentication until the target ends it.
        this.log.warn({ qid: q.qid, err: msg }, 'DH-HMAC-CHAP re-authentication failed on an I/O queue');
      }
    });
    if (failures.length)
      throw new HostError('AUTH_FAILED', `re-authentication failed on ${failures.length} of ${ioQueues.length} I/O queues: ${failures.join('; ')}`);
    this.#reauthCount++;
    const queues = [admin, ...ioQueues].map((q) => this.#queueAuth.get(q)!);
    this.log.info({ queues: queues.length, hash: queues[0]!.hash, dhgroup: queues[0]!.dhgroup }, 'controller re-authenticated');
    return { reauthenticated: true, queues };
  }

  #goLive(): void {
    if (!this.#sm.change('live')) return;
    this.#nrReconnects = 0;
    this.#startKeepAlive();
    const aers = Math.min((this.#id?.aerl ?? 0) + 1, 4);
    for (let i = 0; i < aers; i++) this.#postAer();
  }

  async #scanNamespaces(admin: TcpQueue): Promise<Map<number, NamespaceInfo>> {
    const t = this.options.adminTimeoutMs;
    const nsids: number[] = [];
    let after = 0;
    for (;;) {
      const list = decodeNamespaceList(await identify(admin, Cns.ActiveNamespaceList, after, t));
      nsids.push(...list);
      if (list.length < MAX_NAMESPACE_LIST) break;
      after = list[list.length - 1]!;
    }
    const out = new Map<number, NamespaceInfo>();
    for (const nsid of nsids) {
      if (!(await this.#namespaceReady(admin, nsid, t))) continue;
      const ns = decodeIdentifyNamespace(await identify(admin, Cns.Namespace, nsid, t));
      if (ns.nsze === 0n) continue;
      let descs: ReturnType<typeof decodeNsIdDescriptors> = [];
      try {
        descs = decodeNsIdDescriptors(await identify(admin, Cns.NamespaceDescriptorList, nsid, t));
      } catch (err) {
        if (!(err instanceof HostError) || err.code !== 'COMMAND_FAILED') throw err;
        this.log.debug({ nsid, err: err.message }, 'no namespace descriptor list');
      }
      out.set(nsid, namespaceInfo(nsid, ns, descs));
    }
    return out;
  }

  /**
   * As Linux's host from 6.13 on: the I/O Command Set Independent Identify
   * Namespace (CNS 08h) first, and a namespace whose NSTAT says not ready is
   * left out until a Namespace Attribute Changed event rescans. A controller
   * that refuses CNS 08h (nvmet before 6.13) or predates NVMe 1.1 (CNS was one
   * bit) leaves the decision to CNS 00h as before; only a transport failure
   * is thrown.
   */
  async #namespaceReady(admin: TcpQueue, nsid: number, t: number): Promise<boolean> {
    if (this.#vs < nvmeVersion(1, 1)) return true;
    try {
      const indep = decodeIdentifyNamespaceCsIndependent(await identify(admin, Cns.CsIndependentNamespace, nsid, t));
      if (indep.nstat & Nstat.Ready) return true;
      this.log.info({ nsid }, 'namespace not ready (NSTAT): skipped until it changes');
      return false;
    } catch (err) {
      if (!(err instanceof HostError) || err.code !== 'COMMAND_FAILED') throw err;
      return true;
    }
  }

  /** New namespaces get a path, vanished ones (or ones whose identity changed) are removed. */
  #applyNamespaces(found: Map<number, NamespaceInfo>): void {
    for (const [nsid, p] of this.#paths) {
      const info = found.get(nsid);
      if (info && sameIdentity(info.ids, p.ids)) {
        p.update(info);
        continue;
      }
      this.#paths.delete(nsid);
      this.log.info({ nsid }, 'namespace removed');
      p.remove();
      this.emit('path-removed', p);
    }
    for (const [nsid, info] of found) {
      if (this.#paths.has(nsid)) continue;
      const name = `nvme${subsystemInstance(this.subnqn)}c${this.instance}n${nsid}`;
      const p = new NsPath(this, info, name, this.#hasAna() ? AnaState.Inaccessible : AnaState.Optimized);
      this.#paths.set(nsid, p);
      this.log.info({ nsid, path: name, nguid: info.ids.nguid }, 'namespace added');
      this.emit('path-added', p);
    }
  }

  async #readAnaLog(admin: TcpQueue): Promise<AnaLog> {
    const id = this.#id!;
    const groups = id.nanagrpid || id.anagrpmax || 1;
    let size = 16 + groups * 32 + (id.mnan || id.nn || 1) * 4;
    size = Math.min(size, this.#maxTransfer);
    size -= size % 4;
    return decodeAnaLog(await getLogPage(admin, { lid: LogPageId.Ana, numdBytes: size }, NSID_ALL, this.options.adminTimeoutMs));
  }

  #applyAna(log: AnaLog): void {
    const byNsid = new Map<number, AnaStateValue>();
    const byGroup = new Map<number, AnaStateValue>();
    for (const g of log.groups) {
      if (!isAnaState(g.state)) continue;
      byGroup.set(g.anagrpid, g.state);
      for (const nsid of g.nsids) byNsid.set(nsid, g.state);
    }
    for (const p of this.#paths.values()) {
      const s = byNsid.get(p.nsid) ?? byGroup.get(p.anagrpid);
      if (s !== undefined) p.setAnaState(s);
    }
    this.emit('ana-change');
  }

  // ---------------------------------------------------------------- keep-alive and events

  #startKeepAlive(): void {
    if (this.options.katoMs <= 0) return;
    this.#ctx.clock.clearTimeout(this.#kaTimer);
    this.#kaTimer = this.#ctx.clock.setTimeout(() => void this.#keepAlive(), this.options.katoMs / 2);
  }

  async #keepAlive(): Promise<void> {
    this.#kaTimer = null;
    const admin = this.#admin;
    const kato = this.options.katoMs;
    if (this.state !== 'live' || !admin) return;
    // The Keep Alive must complete within kato (Linux sets the request timeout to kato).
    this.#kaTimer = this.#ctx.clock.setTimeout(() => {
      this.#kaTimer = null;
      if (admin === this.#admin) this.#errorRecovery(new HostError('KEEP_ALIVE_FAILED', `no Keep Alive completion within kato (${kato} ms)`));
    }, kato);
    const r = await admin.submit(keepAliveCommand(), { timeoutMs: 0 });
    if (this.state !== 'live' || admin !== this.#admin) return;
    this.#ctx.clock.clearTimeout(this.#kaTimer);
    this.#kaTimer = null;
    if (r.kind === 'path-error' || r.status !== 0) {
      const why = r.kind === 'path-error' ? r.reason : `status 0x${r.status.toString(16)}`;
      this.#errorRecovery(new HostError('KEEP_ALIVE_FAILED', `Keep Alive failed: ${why}`));
      return;
    }
    this.#startKeepAlive();
  }

  #postAer(): void {
    const admin = this.#admin;
    if (!admin || admin.closed) return;
    void admin.submit(asyncEventRequestCommand(), { timeoutMs: 0 }).then((r) => this.#onAer(r, admin));
  }

  #onAer(r: QueueOutcome, admin: TcpQueue): void {
    if (r.kind === 'path-error') return;
    if (r.status !== 0) {
      this.log.debug({ status: r.status }, 'AER completed with an error: not reposted');
      return;
    }
    const ev = decodeAerResult(r.result);
    this.log.debug({ ev }, 'asynchronous event');
    if (ev.type === AerType.Notice && ev.info === AerInfo.AnaChange) this.#anaPending = true;
    else if (ev.type === AerType.Notice && ev.info === AerInfo.NamespaceAttributeChanged) this.#scanPending = true;
    else this.log.info({ ev }, 'asynchronous event not handled');
    if (this.state === 'live' && admin === this.#admin) this.#postAer();
    void this.#kick();
  }

  /** Run pending rescans and ANA reads, one at a time. */
  async #kick(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      while ((this.#scanPending || this.#anaPending) && this.state === 'live' && this.#admin) {
        const admin = this.#admin;
        const waiters = this.#anaWaiters.splice(0);
        try {
          if (this.#scanPending) {
            this.#scanPending = false;
            this.#anaPending = this.#hasAna();
            await getLogPage(admin, { lid: LogPageId.ChangedNamespaceList, numdBytes: CHANGED_NS_LIST_SIZE }, 0, this.options.adminTimeoutMs).then((b) =>
              this.log.debug({ changed: decodeChangedNamespaceList(b) }, 'changed namespaces'),
            );
            const found = await this.#scanNamespaces(admin);
            if (this.state === 'live' && admin === this.#admin) this.#applyNamespaces(found);
            waiters.push(...this.#anaWaiters.splice(0));
          }
          if (this.#anaPending) {
            this.#anaPending = false;
            const log = await this.#readAnaLog(admin);
            if (this.state === 'live' && admin === this.#admin) this.#applyAna(log);
          }
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'rescan / ANA log read failed');
        } finally {
          for (const w of waiters) w();
        }
      }
    } finally {
      this.#working = false;
      for (const w of this.#anaWaiters.splice(0)) w();
    }
  }

  // ---------------------------------------------------------------- error recovery

  /** Force a reset, as writing reset_controller (tests, CLI). */
  reset(reason = 'reset requested'): void {
    this.#errorRecovery(new HostError('CONTROLLER_RESET', reason));
  }

  #errorRecovery(err: HostError): void {
    if (!this.#sm.change('resetting')) return;
    this.#lastError = err;
    this.log.warn({ code: err.code, err: err.message }, 'controller error: resetting');
    this.#transportLost();
    this.#teardown(err.message);
    this.emit('reset', err);
    if (!this.#sm.change('connecting')) return;
    this.#reconnectOrRemove();
  }

  /** Start the kato clock after which commands failed by this loss can no longer land. */
  #transportLost(): void {
    this.#ctx.clock.clearTimeout(this.#fenceTimer);
    this.#fenceTimer = null;
    if (this.options.katoMs <= 0) return;
    this.#fenceTimer = this.#ctx.clock.setTimeout(() => {
      this.#fenceTimer = null;
      for (const p of this.#paths.values()) p.fenced();
    }, this.options.katoMs);
  }

  #teardown(reason: string): void {
    this.#ctx.clock.clearTimeout(this.#kaTimer);
    this.#kaTimer = null;
    const queues = [...this.#io, ...(this.#admin ? [this.#admin] : [])];
    this.#io = [];
    this.#admin = null;
    for (const q of queues) {
      q.off('close', this.#onQueueClose);
      q.close(reason);
    }
  }

  #reconnectOrRemove(): void {
    if (this.state !== 'connecting') return;
    const max = this.options.maxReconnects;
    if (max !== -1 && this.#nrReconnects >= max) {
      this.log.warn({ attempts: this.#nrReconnects }, 'ctrl_loss_tmo expired: removing controller');
      this.#delete(new HostError('CONTROLLER_DELETED', `ctrl_loss_tmo expired after ${this.#nrReconnects} reconnect attempts`));
      return;
    }
    this.#reconnectTimer = this.#ctx.clock.setTimeout(() => void this.#reconnect(), this.options.reconnectDelayMs);
  }

  async #reconnect(): Promise<void> {
    this.#reconnectTimer = null;
    if (this.state !== 'connecting') return;
    try {
      await this.#setup();
    } catch (err) {
      this.#nrReconnects++;
      this.log.info({ attempt: this.#nrReconnects, err: (err as Error).message }, 'reconnect failed');
      this.#teardown('reconnect failed');
      this.#reconnectOrRemove();
      return;
    }
    if (this.state !== 'connecting') {
      this.#teardown('controller deleted');
      return;
    }
    this.log.info({ attempts: this.#nrReconnects + 1 }, 'reconnected');
    this.#goLive();
  }

  #startFailfast(): void {
    this.#failfastExpired = false;
    if (this.options.fastIoFailTmoMs < 0) return;
    this.#failfastTimer = this.#ctx.clock.setTimeout(() => {
      this.#failfastTimer = null;
      if (this.state !== 'connecting') return;
      this.#failfastExpired = true;
      this.log.info('fast_io_fail_tmo expired');
      for (const p of this.#paths.values()) p.notifyChange();
    }, this.options.fastIoFailTmoMs);
  }

  #stopFailfast(): void {
    this.#ctx.clock.clearTimeout(this.#failfastTimer);
    this.#failfastTimer = null;
    this.#failfastExpired = false;
  }

  // ---------------------------------------------------------------- delete

  #delete(err: HostError): void {
    if (!this.#sm.change('deleting')) return;
    this.#lastError ??= err;
    this.#finishDelete(err.message);
  }

  #finishDelete(reason: string): void {
    this.#ctx.clock.clearTimeout(this.#reconnectTimer);
    this.#ctx.clock.clearTimeout(this.#failfastTimer);
    this.#ctx.clock.clearTimeout(this.#fenceTimer);
    this.#reconnectTimer = this.#failfastTimer = this.#fenceTimer = null;
    this.#teardown(reason);
    this.#sm.change('deleted');
    const paths = [...this.#paths.values()];
    this.#paths.clear();
    for (const p of paths) {
      p.remove();
      this.emit('path-removed', p);
    }
    for (const w of this.#anaWaiters.splice(0)) w();
  }

  /**
   * Clean disconnect: refuse new I/O, let I/O in flight finish (up to
   * io_timeout), shut the controller down (CC.SHN = 01b, wait for SHST = 10b),
   * close every queue. Paths emit 'removed'.
   */
  async disconnect(): Promise<void> {
    const wasLive = this.state === 'live';
    if (!this.#sm.change('deleting')) return;
    this.#ctx.clock.clearTimeout(this.#kaTimer);
    this.#kaTimer = null;
    const admin = this.#admin;
    if (wasLive && admin) {
      const deadline = this.#ctx.clock.now() + this.options.ioTimeoutMs;
      while (this.#io.some((q) => q.inflight > 0) && this.#ctx.clock.now() < deadline) await sleepOn(this.#ctx.clock, 5);
      try {
        await shutdownController(admin, this.options.adminTimeoutMs, SHUTDOWN_TIMEOUT_MS);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'shutdown handshake failed');
      }
    }
    this.#finishDelete('controller disconnected');
  }
}

/** What reauthenticate() did: every queue's new record (empty when the controller was not live). */
export interface ReauthReport {
  readonly reauthenticated: boolean;
  readonly queues: readonly QueueAuthRecord[];
}

function asHostError(err: unknown): HostError {
  return err instanceof HostError ? err : new HostError('AUTH_FAILED', (err as Error).message, { cause: err });
}

/** Identify Controller checks a Linux host makes before using a fabrics controller. */
function checkIdentify(id: IdentifyController, cntlid: number, subnqn: string): void {
  const problems: string[] = [];
  if (id.cntlid !== cntlid) problems.push(`CNTLID ${id.cntlid} differs from the Connect response ${cntlid}`);
  if (id.subnqn !== subnqn) problems.push(`SUBNQN "${id.subnqn}" differs from the one connected to`);
  if (id.ioccsz < 4) problems.push(`IOCCSZ ${id.ioccsz} < 4`);
  if (id.iorcsz < 1) problems.push(`IORCSZ ${id.iorcsz} < 1`);
  if ((id.sgls & 0x3) === 0) problems.push('SGLs not supported');
  if (id.icdoff !== 0) problems.push(`ICDOFF ${id.icdoff} not supported`);
  if (problems.length) throw new HostError('IDENTIFY_INVALID', `Identify Controller refused: ${problems.join('; ')}`);
}
