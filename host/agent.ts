#!/usr/bin/env node
/**
 * The host agent: a long-running process that holds this host's NVMe/TCP
 * controllers and multipath heads (a HostSession), the way the kernel holds
 * them for nvme-cli. `nvmets-host connect` / `connect-all` start it (detached)
 * when it is not running; every other verb talks to it over its control socket
 * ($TMPDIR/nvmets-host-<uid>.sock, JSON lines: host/agent-protocol.ts). It
 * logs to its own file (pino JSON lines: controller states, path up/down,
 * failover start/end with duration, no-path episodes) and exits once it holds
 * no controller (after disconnect / disconnect-all, or when the last one was
 * deleted by ctrl_loss_tmo).
 *
 * HostAgent is the part without a socket: the CLI also uses it in-process for
 * one-shot commands (`id-ctrl --traddr ...`).
 *
 *   node --import tsx host/agent.ts --socket PATH [--log FILE] [--log-level info]
 */
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino, type Logger } from 'pino';
import { Cns } from '../shared/identify.ts';
import { SubType, TrType, encodeGetLogPageDwords } from '../shared/log-pages.ts';
import { AdminOpcode } from '../shared/opcodes.ts';
import { getLogPageCommand, identifyCommand, sqe, PSDT_MASK, PSDT_SGL } from '../shared/sqe.ts';
import { describeStatus } from '../shared/status.ts';
import {
  AGENT_METHODS,
  AgentRequestError,
  agentLogPath,
  paramBool as bool,
  paramInt as int,
  paramOptInt as optInt,
  paramOptStr as optStr,
  paramStr as str,
  parseAgentRequest,
  type AgentMethod,
  type AgentStatus,
  type ConnectAllResult,
  type ConnectResult,
  type ControllerInfo,
  type DataResult,
  type DisconnectResult,
  type ReauthResult,
  type IoEvent,
  type IoParams,
  type IoProgress,
  type IoSummary,
  type PassthruResult,
  type ShowResult,
  type Topology,
  type TopologyHost,
  type TopologyNamespace,
  type TopologySubsystem,
} from './agent-protocol.ts';
import type { Controller } from './controller.ts';
import { HostError } from './errors.ts';
import { IO_POLICIES, isIoPolicy, type HeadCounters, type HeadOptions, type MultipathHead } from './multipath/index.ts';
import type { ConnectOptions } from './options.ts';
import { HostSession } from './session.ts';
import type { Clock, TimerHandle } from '../shared/clock.ts';
import { featureSwitchesFromEnv, type FeatureSwitches } from '../shared/feature-switches.ts';
import type { QueueOutcome } from './tcp-queue.ts';
import { runWorkload, type BlockDevice, type Pattern } from './workload.ts';

type Params = Record<string, unknown>;

export { AgentRequestError };

export interface DispatchContext {
  /** Streamed lines (io progress and events) before the answer. */
  readonly stream?: (msg: { progress: IoProgress } | { event: IoEvent }) => void;
  /** io stops early when this aborts (cancel, client gone). */
  readonly signal?: AbortSignal;
}

export interface HostAgentOptions {
  readonly logger?: Logger;
  /** Defaults for every multipath head. */
  readonly head?: HeadOptions;
  /** Reported by status / show. */
  readonly socket?: string;
  readonly logFile?: string;
  /** Every timer and time read of the agent and its session; default real time. */
  readonly clock?: Clock;
  /** Feature switches, read from the environment by whoever starts the agent (main(), the CLI); default all on. */
  readonly switches?: Partial<Pick<FeatureSwitches, 'directReads'>>;
}

/** "/dev/nvme0" -> "nvme0". */
function devName(name: string): string {
  return name.startsWith('/dev/') ? name.slice(5) : name;
}

function hex(n: number, width = 0): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Linux's sysfs "address" of a TCP controller. */
function sysfsAddress(c: Controller): string {
  return `traddr=${c.options.traddr},trsvcid=${c.options.trsvcid}`;
}

const COUNTER_KEYS: readonly (keyof HeadCounters)[] = [
  'ios',
  'bytesRead',
  'bytesWritten',
  'failovers',
  'retries',
  'errors',
  'requeues',
  'fencedWrites',
  'activations',
  'noPathMs',
];

function counterDelta(a: Readonly<HeadCounters>, b: Readonly<HeadCounters>): HeadCounters {
  const out = {} as HeadCounters;
  for (const k of COUNTER_KEYS) out[k] = b[k] - a[k];
  return out;
}

const PATTERNS: readonly Pattern[] = ['read', 'write', 'randread', 'randwrite', 'randrw', 'rw'];
/** Lists in an io summary are cut to this many entries (totals are kept). */
const SUMMARY_LIST_MAX = 50;

export class HostAgent {
  readonly session: HostSession;
  readonly #log: Logger;
  readonly #startedAt: number;
  readonly #socket: string;
  readonly #logFile: string;
  /** Controller instances being connected (not yet in the session). */
  readonly #reserved = new Set<number>();
  /** nvme-subsysN numbers. */
  readonly #subsystems = new Map<string, number>();
  /** Heads with an io running. */
  readonly #running = new Set<string>();
  readonly #ioAborts = new Set<AbortController>();

  constructor(opts: HostAgentOptions = {}) {
    this.#log = opts.logger ?? pino({ level: 'silent' });
    this.#socket = opts.socket ?? '';
    this.#logFile = opts.logFile ?? '';
    this.session = new HostSession({
      ...(opts.head ? { head: opts.head } : {}),
      logger: this.#log,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.switches ? { switches: opts.switches } : {}),
    });
    this.#startedAt = this.session.clock.wallNow();
    this.session.on('controller-removed', (c) => this.#log.info({ event: 'controller-removed', ctrl: c.name, subnqn: c.subnqn }, 'controller removed'));
  }

  get controllerCount(): number {
    return this.session.controllers.size;
  }

  get ioRunning(): boolean {
    return this.#running.size > 0;
  }

  async dispatch(method: string, p: Params = {}, ctx: DispatchContext = {}): Promise<unknown> {
    switch (method as AgentMethod) {
      case 'status':
        return this.status();
      case 'connect':
        return this.connect(p);
      case 'connect-all':
        return this.connectAll(p);
      case 'disconnect':
        return this.disconnect(p);
      case 'disconnect-all':
        return this.disconnectAll();
      case 'topology':
        return this.topology();
      case 'show':
        return this.show();
      case 'set-policy':
        return this.setPolicy(p);
      case 'reauth':
        return this.reauth(p);
      case 'id-ctrl':
        return this.identifyController(p);
      case 'id-ns':
        return this.identifyNamespace(p);
      case 'get-log':
        return this.getLog(p);
      case 'admin-passthru':
        return this.adminPassthru(p);
      case 'io':
        return this.io(p, ctx);
      default:
        throw new AgentRequestError(`unknown method "${method}" (${AGENT_METHODS.filter((m) => m !== 'cancel').join(', ')})`);
    }
  }

  status(): AgentStatus {
    return {
      pid: process.pid,
      socket: this.#socket,
      log: this.#logFile,
      uptimeMs: this.session.clock.wallNow() - this.#startedAt,
      controllers: this.session.controllers.size,
      heads: this.session.heads().length,
    };
  }

  // ---------------------------------------------------------------- naming

  #controllers(): Controller[] {
    return [...this.session.controllers].filter((c) => c.state !== 'deleted').sort((a, b) => a.instance - b.instance);
  }

  /** The lowest free controller instance (Linux reuses freed nvmeN numbers). */
  #reserveInstance(): number {
    const used = new Set<number>(this.#reserved);
    for (const c of this.session.controllers) used.add(c.instance);
    let n = 0;
    while (used.has(n)) n++;
    this.#reserved.add(n);
    return n;
  }

  #subsystemNumber(nqn: string): number {
    const head = this.session.heads().find((h) => h.subnqn === nqn);
    const m = head ? /^nvme(\d+)n\d+$/.exec(head.name) : null;
    if (m) {
      this.#subsystems.set(nqn, Number(m[1]));
      return Number(m[1]);
    }
    const known = this.#subsystems.get(nqn);
    if (known !== undefined) return known;
    const used = new Set(this.#subsystems.values());
    for (const h of this.session.heads()) {
      const hm = /^nvme(\d+)n\d+$/.exec(h.name);
      if (hm) used.add(Number(hm[1]));
    }
    let n = 0;
    while (used.has(n)) n++;
    this.#subsystems.set(nqn, n);
    return n;
  }

  #deviceList(): string {
    const ctrls = this.#controllers().map((c) => c.name);
    const heads = this.session.heads().map((h) => h.name);
    return `controllers: ${ctrls.join(', ') || 'none'}; namespaces: ${heads.join(', ') || 'none'}`;
  }

  #controller(name: string): Controller {
    const n = devName(name);
    const c = this.#controllers().find((x) => x.name === n);
    if (!c) throw new AgentRequestError(`${name}: no such controller (${this.#deviceList()})`);
    return c;
  }

  #head(name: string | undefined): MultipathHead {
    const heads = this.session.heads();
    if (name === undefined) {
      if (heads.length === 1) return heads[0]!;
      if (heads.length === 0) throw new AgentRequestError(`no namespace is connected (${this.#deviceList()})`);
      throw new AgentRequestError(`several namespaces: name one (${heads.map((h) => h.name).join(', ')})`);
    }
    const h = heads.find((x) => x.name === devName(name));
    if (!h) throw new AgentRequestError(`${name}: no such namespace (${this.#deviceList()})`);
    return h;
  }

  /** A controller device, or a namespace head (its current path's controller) for admin commands. */
  #adminTarget(name: string): { ctrl: Controller; head: MultipathHead | null } {
    const n = devName(name);
    const ctrl = this.#controllers().find((x) => x.name === n);
    if (ctrl) return { ctrl, head: null };
    const head = this.session.heads().find((h) => h.name === n);
    if (!head) throw new AgentRequestError(`${name}: no such device (${this.#deviceList()})`);
    const byPath = new Map<string, Controller>();
    for (const c of this.#controllers()) for (const p of c.paths) byPath.set(p.name, c);
    const paths = head.state().paths.filter((p) => byPath.has(p.name));
    const best =
      paths.find((p) => p.active && p.state === 'live') ??
      paths.find((p) => p.usable && p.ana === 'optimized') ??
      paths.find((p) => p.usable) ??
      paths.find((p) => p.state === 'live');
    if (!best) throw new AgentRequestError(`${name}: no live path to send an admin command through`);
    return { ctrl: byPath.get(best.name)!, head };
  }

  // ---------------------------------------------------------------- connect / disconnect

  #connectOptions(p: Params): Omit<ConnectOptions, 'traddr' | 'trsvcid' | 'subnqn'> {
    const o: Record<string, unknown> = {};
    const hostnqn = optStr(p, 'hostnqn');
    const hostid = optStr(p, 'hostid');
    if (hostnqn) o['hostnqn'] = hostnqn;
    if (hostid) o['hostid'] = hostid;
    for (const k of [
      'katoMs',
      'reconnectDelayMs',
      'ctrlLossTmoMs',
      'fastIoFailTmoMs',
      'nrIoQueues',
      'queueSize',
      'connectTimeoutMs',
      'ioTimeoutMs',
      'adminTimeoutMs',
    ] as const) {
      if (p[k] !== undefined) o[k] = p[k];
    }
    for (const k of ['hdrDigest', 'dataDigest', 'disableSqflow'] as const) if (p[k] !== undefined) o[k] = p[k];
    for (const k of ['dhchapKey', 'dhchapCtrlKey'] as const) {
      const v = optStr(p, k);
      if (v) o[k] = v;
    }
    return o;
  }

  #existing(traddr: string, trsvcid: number | string, subnqn: string, hostnqn: string | undefined): Controller | undefined {
    return this.#controllers().find(
      (c) =>
        c.options.traddr === traddr &&
        String(c.options.trsvcid) === String(trsvcid) &&
        c.options.subnqn === subnqn &&
        (hostnqn === undefined || c.options.hostnqn === hostnqn),
    );
  }

  async #connectOne(
    traddr: string,
    trsvcid: number | string,
    subnqn: string,
    extra: Omit<ConnectOptions, 'traddr' | 'trsvcid' | 'subnqn'>,
    instance: number,
  ): Promise<Controller> {
    try {
      const ctrl = await this.session.connect({ ...extra, traddr, trsvcid, subnqn, instance });
      this.#subsystemNumber(subnqn);
      this.#log.info(
        { event: 'controller-added', ctrl: ctrl.name, subnqn, traddr, trsvcid: ctrl.options.trsvcid, paths: ctrl.paths.map((x) => x.name) },
        'controller connected',
      );
      return ctrl;
    } finally {
      this.#reserved.delete(instance);
    }
  }

  async connect(p: Params): Promise<ConnectResult> {
    const traddr = str(p, 'traddr');
    const trsvcid = p['trsvcid'] === undefined ? 4420 : (p['trsvcid'] as number | string);
    const subnqn = str(p, 'subnqn');
    const extra = this.#connectOptions(p);
    if (!bool(p, 'duplicate')) {
      const dup = this.#existing(traddr, trsvcid, subnqn, extra.hostnqn ?? this.#controllers()[0]?.options.hostnqn);
      if (dup) throw new AgentRequestError(`already connected: ${dup.name} (${subnqn} at ${sysfsAddress(dup)}; --duplicate-connect to connect again)`);
    }
    const ctrl = await this.#connectOne(traddr, trsvcid, subnqn, extra, this.#reserveInstance());
    return { device: ctrl.name, subnqn, address: sysfsAddress(ctrl) };
  }

  async connectAll(p: Params): Promise<ConnectAllResult> {
    const traddr = str(p, 'traddr');
    const extra = this.#connectOptions(p);
    const entries = await this.session.discover({
      traddr,
      trsvcid: p['trsvcid'] === undefined ? 8009 : (p['trsvcid'] as number | string),
      ...(optStr(p, 'discoveryNqn') ? { subnqn: optStr(p, 'discoveryNqn') } : {}),
      ...(extra.hostnqn ? { hostnqn: extra.hostnqn } : {}),
      ...(extra.hostid ? { hostid: extra.hostid } : {}),
      ...(extra.hdrDigest !== undefined ? { hdrDigest: extra.hdrDigest } : {}),
      ...(extra.dataDigest !== undefined ? { dataDigest: extra.dataDigest } : {}),
      ...(extra.connectTimeoutMs !== undefined ? { connectTimeoutMs: extra.connectTimeoutMs } : {}),
      logger: this.#log,
    });
    const skipped: string[] = [];
    const todo: { entry: (typeof entries)[number]; instance: number }[] = [];
    const seen = new Set<string>();
    const hostnqn = extra.hostnqn ?? this.#controllers()[0]?.options.hostnqn;
    for (const e of entries) {
      if (e.subtype !== SubType.Nvme || e.trtype !== TrType.Tcp) continue;
      const key = `${e.subnqn} traddr=${e.traddr},trsvcid=${e.trsvcid}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (this.#existing(e.traddr, e.trsvcid, e.subnqn, hostnqn)) {
        skipped.push(key);
        continue;
      }
      todo.push({ entry: e, instance: this.#reserveInstance() });
    }
    const settled = await Promise.allSettled(todo.map((t) => this.#connectOne(t.entry.traddr, t.entry.trsvcid, t.entry.subnqn, extra, t.instance)));
    const connected: ConnectResult[] = [];
    const failures: { entry: string; error: string }[] = [];
    settled.forEach((r, i) => {
      const e = todo[i]!.entry;
      if (r.status === 'fulfilled') connected.push({ device: r.value.name, subnqn: e.subnqn, address: sysfsAddress(r.value) });
      else failures.push({ entry: `${e.subnqn} traddr=${e.traddr},trsvcid=${e.trsvcid}`, error: (r.reason as Error).message });
    });
    return { connected, skipped, failures };
  }

  async disconnect(p: Params): Promise<DisconnectResult> {
    const nqns = optStr(p, 'nqn');
    const devices = optStr(p, 'device');
    if (!nqns && !devices) throw new AgentRequestError('give a device (--device) or an NQN (--nqn)');
    const targets = new Set<Controller>();
    if (devices) for (const d of devices.split(',').filter(Boolean)) targets.add(this.#controller(d));
    if (nqns) {
      for (const n of nqns.split(',').filter(Boolean)) for (const c of this.#controllers()) if (c.subnqn === n) targets.add(c);
    }
    const list = [...targets];
    await Promise.all(list.map((c) => c.disconnect()));
    for (const c of list) this.#log.info({ event: 'controller-disconnected', ctrl: c.name }, 'controller disconnected');
    return { disconnected: list.map((c) => c.name) };
  }

  async disconnectAll(): Promise<DisconnectResult> {
    for (const a of this.#ioAborts) a.abort();
    const list = this.#controllers();
    await Promise.all(list.map((c) => c.disconnect()));
    for (const c of list) this.#log.info({ event: 'controller-disconnected', ctrl: c.name }, 'controller disconnected');
    return { disconnected: list.map((c) => c.name) };
  }

  /** Disconnect everything and close the heads. */
  async close(): Promise<void> {
    for (const a of this.#ioAborts) a.abort();
    await this.session.close();
  }

  // ---------------------------------------------------------------- visibility

  topology(): Topology {
    const ctrls = this.#controllers();
    const byPath = new Map<string, Controller>();
    for (const c of ctrls) for (const p of c.paths) byPath.set(p.name, c);
    const hosts = new Map<string, { hostnqn: string; hostid: string; subsystems: Map<string, Controller[]> }>();
    for (const c of ctrls) {
      const hostid = uuidText(c.options.hostid);
      const key = `${c.options.hostnqn}\u0000${hostid}`;
      let h = hosts.get(key);
      if (!h) hosts.set(key, (h = { hostnqn: c.options.hostnqn, hostid, subsystems: new Map() }));
      const list = h.subsystems.get(c.subnqn) ?? [];
      list.push(c);
      h.subsystems.set(c.subnqn, list);
    }
    const out: TopologyHost[] = [];
    for (const h of hosts.values()) {
      const subsystems: TopologySubsystem[] = [];
      const nqns = [...h.subsystems.keys()].sort((a, b) => this.#subsystemNumber(a) - this.#subsystemNumber(b));
      for (const nqn of nqns) {
        const mine = new Set(h.subsystems.get(nqn));
        const heads = this.session
          .heads()
          .filter((x) => x.subnqn === nqn)
          .sort((a, b) => a.nsid - b.nsid || a.name.localeCompare(b.name));
        const namespaces: TopologyNamespace[] = [];
        for (const head of heads) {
          const st = head.state();
          const paths = st.paths
            .filter((p) => mine.has(byPath.get(p.name)!))
            .map((p) => {
              const c = byPath.get(p.name)!;
              return {
                controller: c.name,
                path: p.name,
                transport: 'tcp',
                address: sysfsAddress(c),
                state: p.state,
                ana: p.ana,
                active: p.active,
                instance: c.instance,
              };
            })
            .sort((a, b) => a.instance - b.instance)
            .map(({ instance: _i, ...rest }) => rest);
          if (paths.length > 0) namespaces.push({ nsid: head.nsid, head: head.name, paths });
        }
        subsystems.push({
          name: `nvme-subsys${this.#subsystemNumber(nqn)}`,
          nqn,
          iopolicy: heads[0]?.policy ?? 'queue-depth',
          controllers: [...mine].map((c) => ({ name: c.name, transport: 'tcp', address: sysfsAddress(c), state: c.state })),
          namespaces,
        });
      }
      out.push({ hostnqn: h.hostnqn, hostid: h.hostid, subsystems });
    }
    return { hosts: out };
  }

  show(): ShowResult {
    const controllers: ControllerInfo[] = this.#controllers().map((c) => ({
      name: c.name,
      state: c.state,
      subnqn: c.subnqn,
      subsystem: `nvme-subsys${this.#subsystemNumber(c.subnqn)}`,
      transport: 'tcp',
      address: sysfsAddress(c),
      cntlid: c.cntlid,
      hostnqn: c.options.hostnqn,
      hostid: uuidText(c.options.hostid),
      katoMs: c.options.katoMs,
      reconnectDelayMs: c.options.reconnectDelayMs,
      ctrlLossTmoMs: c.options.ctrlLossTmoMs,
      fastIoFailTmoMs: c.options.fastIoFailTmoMs,
      ioQueues: c.ioQueueCount,
      queueSize: c.options.queueSize,
      hdrDigest: c.options.hdrDigest,
      dataDigest: c.options.dataDigest,
      lastError: c.lastError?.message ?? null,
      paths: c.paths.map((p) => p.name),
    }));
    return { agent: this.status(), controllers, heads: this.session.heads().map((h) => h.state()) };
  }

  /**
   * DH-HMAC-CHAP re-authentication of one controller (Linux: a write to its
   * dhchap_secret / dhchap_ctrl_secret in sysfs), new keys optional; I/O
   * running in this agent goes on.
   */
  async reauth(p: Params): Promise<ReauthResult> {
    const c = this.#controller(str(p, 'device'));
    const keys: { dhchapKey?: string; dhchapCtrlKey?: string } = {};
    const key = optStr(p, 'dhchapKey');
    const ctrlKey = optStr(p, 'dhchapCtrlKey');
    if (key) keys.dhchapKey = key;
    if (ctrlKey) keys.dhchapCtrlKey = ctrlKey;
    const r = await c.reauthenticate(keys);
    this.#log.info({ ctrl: c.name, reauthenticated: r.reauthenticated, queues: r.queues.length }, 're-authentication requested');
    return {
      device: c.name,
      reauthenticated: r.reauthenticated,
      queues: r.queues.map((q) => ({ qid: q.qid, hash: q.hash, dhgroup: q.dhgroup, bidirectional: q.bidirectional })),
    };
  }

  setPolicy(p: Params): { heads: string[]; policy: string } {
    const device = devName(str(p, 'device'));
    const policy = str(p, 'policy');
    if (!isIoPolicy(policy)) throw new AgentRequestError(`unknown I/O policy "${policy}" (one of ${IO_POLICIES.join(', ')})`);
    let heads: MultipathHead[];
    const sub = /^nvme-subsys(\d+)$/.exec(device);
    if (sub) {
      heads = this.session.heads().filter((h) => this.#subsystemNumber(h.subnqn) === Number(sub[1]));
      if (heads.length === 0) throw new AgentRequestError(`${device}: no such subsystem with namespaces (${this.#deviceList()})`);
    } else heads = [this.#head(device)];
    for (const h of heads) h.setPolicy(policy);
    return { heads: heads.map((h) => h.name), policy };
  }

  // ---------------------------------------------------------------- admin commands

  #checkOutcome(ctrl: Controller, what: string, r: QueueOutcome): Extract<QueueOutcome, { kind: 'completed' }> {
    if (r.kind === 'path-error') throw new AgentRequestError(`${ctrl.name}: ${what}: ${r.reason} (controller ${ctrl.state})`);
    if (r.status !== 0) throw new AgentRequestError(`NVMe status: ${describeStatus(r.status)} (${what} on ${ctrl.name})`);
    return r;
  }

  async identifyController(p: Params): Promise<DataResult> {
    const { ctrl } = this.#adminTarget(str(p, 'device'));
    const r = this.#checkOutcome(
      ctrl,
      'Identify Controller',
      await ctrl.submitAdmin(identifyCommand({ cns: Cns.Controller }), { readLength: 4096, timeoutMs: ctrl.adminTimeoutMs }),
    );
    return { device: ctrl.name, data: (r.data ?? Buffer.alloc(4096)).toString('base64') };
  }

  async identifyNamespace(p: Params): Promise<DataResult & { nsid: number }> {
    const { ctrl, head } = this.#adminTarget(str(p, 'device'));
    const given = optInt(p, 'nsid', 1, 0xffffffff);
    const nsid = given ?? head?.nsid;
    if (nsid === undefined) throw new AgentRequestError(`${ctrl.name} is a controller: give the namespace id (--namespace-id)`);
    const r = this.#checkOutcome(
      ctrl,
      `Identify Namespace ${nsid}`,
      await ctrl.submitAdmin(identifyCommand({ cns: Cns.Namespace, nsid }), { readLength: 4096, timeoutMs: ctrl.adminTimeoutMs }),
    );
    return { device: ctrl.name, nsid, data: (r.data ?? Buffer.alloc(4096)).toString('base64') };
  }

  async getLog(p: Params): Promise<DataResult> {
    const { ctrl } = this.#adminTarget(str(p, 'device'));
    const lid = int(p, 'lid', 0, 255);
    const len = int(p, 'len', 0, 2 ** 31 - 1);
    if (len === 0 || len % 4 !== 0) throw new AgentRequestError(`log length ${len}: a non-zero multiple of 4 is required (--log-len)`);
    const lsp = int(p, 'lsp', 0, 127, 0);
    const lsi = int(p, 'lsi', 0, 0xffff, 0);
    const lpo = int(p, 'lpo', 0, Number.MAX_SAFE_INTEGER, 0);
    const csi = int(p, 'csi', 0, 255, 0);
    const uuidIndex = int(p, 'uuidIndex', 0, 127, 0);
    const xfer = int(p, 'xferLen', 4096, 2 ** 31 - 1, 4096);
    if (xfer % 4096 !== 0) throw new AgentRequestError(`xfer-len ${xfer}: must be a multiple of 4096`);
    const nsid = int(p, 'nsid', 0, 0xffffffff, 0xffffffff);
    const rae = bool(p, 'rae');
    const ot = bool(p, 'ot');
    const out = Buffer.alloc(len);
    for (let off = 0; off < len; off += xfer) {
      const n = Math.min(xfer, len - off);
      const last = off + n >= len;
      const dw = encodeGetLogPageDwords({ lid, numdBytes: n, offset: lpo + off, lsp, lsi, csi, uuidIndex, ot, rae: last ? rae : true });
      const r = this.#checkOutcome(
        ctrl,
        `Get Log Page 0x${lid.toString(16)}`,
        await ctrl.submitAdmin(getLogPageCommand({ nsid, ...dw }, n), { readLength: n, timeoutMs: ctrl.adminTimeoutMs }),
      );
      r.data?.copy(out, off);
    }
    return { device: ctrl.name, data: out.toString('base64') };
  }

  async adminPassthru(p: Params): Promise<PassthruResult> {
    const { ctrl } = this.#adminTarget(str(p, 'device'));
    const opcode = int(p, 'opcode', 0, 255);
    if (opcode === AdminOpcode.Fabrics)
      throw new AgentRequestError('opcode 0x7f: Fabrics commands belong to the controller (connect, properties), not to passthru');
    if (opcode === AdminOpcode.AsyncEventRequest) throw new AgentRequestError('opcode 0x0c: Asynchronous Event Requests are posted by the controller itself');
    const dataLen = int(p, 'dataLen', 0, 1 << 24, 0);
    let read = bool(p, 'read');
    let write = bool(p, 'write');
    // As nvme-cli: the opcode's data transfer bits give the direction.
    if (opcode & 0x01) write = true;
    if (opcode & 0x02) read = true;
    if (dataLen > 0 && !read && !write) throw new AgentRequestError('data direction not given (--read or --write)');
    if (dataLen > 0 && read && write) throw new AgentRequestError('bidirectional data transfers are not supported');
    const prefill = int(p, 'prefill', 0, 255, 0);
    let data: Buffer | undefined;
    if (dataLen > 0 && write) {
      data = Buffer.alloc(dataLen, prefill);
      const given = optStr(p, 'data');
      if (given) Buffer.from(given, 'base64').copy(data, 0, 0, dataLen);
    }
    const flags = int(p, 'flags', 0, 255, 0);
    const cmd = sqe({
      opcode,
      flags: PSDT_SGL | (flags & ~PSDT_MASK & 0xff),
      nsid: int(p, 'nsid', 0, 0xffffffff, 0),
      cdw2: int(p, 'cdw2', 0, 0xffffffff, 0),
      cdw3: int(p, 'cdw3', 0, 0xffffffff, 0),
      cdw10: int(p, 'cdw10', 0, 0xffffffff, 0),
      cdw11: int(p, 'cdw11', 0, 0xffffffff, 0),
      cdw12: int(p, 'cdw12', 0, 0xffffffff, 0),
      cdw13: int(p, 'cdw13', 0, 0xffffffff, 0),
      cdw14: int(p, 'cdw14', 0, 0xffffffff, 0),
      cdw15: int(p, 'cdw15', 0, 0xffffffff, 0),
    });
    const timeoutMs = int(p, 'timeoutMs', 0, 2 ** 31 - 1, 0) || ctrl.adminTimeoutMs;
    const clock = this.session.clock;
    const t0 = clock.now();
    const r = await ctrl.submitAdmin(cmd, { ...(data ? { data } : {}), ...(read && dataLen > 0 ? { readLength: dataLen } : {}), timeoutMs });
    const latencyUs = Math.round((clock.now() - t0) * 1000);
    if (r.kind === 'path-error') throw new AgentRequestError(`${ctrl.name}: passthru: ${r.reason} (controller ${ctrl.state})`);
    this.#log.info({ event: 'admin-passthru', ctrl: ctrl.name, opcode: hex(opcode, 2), nsid: cmd.nsid, status: r.status, result: r.result }, 'admin passthru');
    if (r.status === 0 && opcode === AdminOpcode.SetNamespaceActive) {
      // The target answers 0xFE after the ANA change: read the ANA log of every
      // controller of the subsystem now, so that what we show next is current
      // (the ANA-change events would bring it a moment later anyway).
      await Promise.all(
        this.#controllers()
          .filter((c) => c.subnqn === ctrl.subnqn && c.state === 'live')
          .map((c) => c.refreshAna()),
      );
    }
    return { device: ctrl.name, status: r.status, result: r.result >>> 0, latencyUs, data: read && dataLen > 0 && r.data ? r.data.toString('base64') : null };
  }

  // ---------------------------------------------------------------- io

  async io(p: Params, ctx: DispatchContext): Promise<IoSummary> {
    const head = this.#head(optStr(p, 'device'));
    const rw = str(p, 'rw') as Pattern;
    if (!PATTERNS.includes(rw)) throw new AgentRequestError(`rw "${rw}": one of ${PATTERNS.join(', ')}`);
    const params: IoParams = {
      device: head.name,
      rw,
      bs: int(p, 'bs', 1, 1 << 24),
      qd: int(p, 'qd', 1, 4096, 1),
      ...(p['runtimeMs'] !== undefined ? { runtimeMs: int(p, 'runtimeMs', 1, 2 ** 31 - 1) } : {}),
      ...(p['ios'] !== undefined ? { ios: int(p, 'ios', 1, Number.MAX_SAFE_INTEGER) } : {}),
      verify: bool(p, 'verify'),
      ...(p['rwmixread'] !== undefined ? { rwmixread: int(p, 'rwmixread', 0, 100) } : {}),
      ...(p['sizeBytes'] !== undefined ? { sizeBytes: int(p, 'sizeBytes', 1, Number.MAX_SAFE_INTEGER) } : {}),
      ...(p['seed'] !== undefined ? { seed: int(p, 'seed', 0, 0xffffffff) } : {}),
      ...(p['policy'] !== undefined ? { policy: str(p, 'policy') } : {}),
      ...(p['stallThresholdMs'] !== undefined ? { stallThresholdMs: int(p, 'stallThresholdMs', 1, 600_000) } : {}),
    };
    if (params.runtimeMs === undefined && params.ios === undefined) throw new AgentRequestError('give a runtime or a number of I/Os');
    if (params.bs % head.blockSize !== 0) throw new AgentRequestError(`bs ${params.bs} is not a multiple of the block size ${head.blockSize} of ${head.name}`);
    if (params.policy !== undefined) {
      if (!isIoPolicy(params.policy)) throw new AgentRequestError(`unknown I/O policy "${params.policy}" (one of ${IO_POLICIES.join(', ')})`);
      head.setPolicy(params.policy);
    }
    if (this.#running.has(head.name)) throw new AgentRequestError(`an io is already running on ${head.name}: one verified workload per namespace at a time`);
    this.#running.add(head.name);
    const abort = new AbortController();
    this.#ioAborts.add(abort);
    const onAbort = () => abort.abort();
    ctx.signal?.addEventListener('abort', onAbort);
    if (ctx.signal?.aborted) abort.abort();

    const clock = this.session.clock;
    const t0 = clock.now();
    const at = () => Math.round(clock.now() - t0);
    const events: IoEvent[] = [];
    const push = (e: IoEvent) => {
      events.push(e);
      ctx.stream?.({ event: e });
    };
    const listeners = {
      'path-up': (e: { path: string; reason: string }) => push({ type: 'path-up', atMs: at(), ...e }),
      'path-down': (e: { path: string; reason: string }) => push({ type: 'path-down', atMs: at(), ...e }),
      'failover-start': (e: { from: string; reason: string }) => push({ type: 'failover-start', atMs: at(), ...e }),
      'failover-end': (e: { from: string; to: string; durationMs: number }) => push({ type: 'failover-end', atMs: at(), ...e }),
      'no-path': (e: { queued: number; paths: readonly string[] }) => push({ type: 'no-path', atMs: at(), ...e }),
    };
    for (const [ev, fn] of Object.entries(listeners)) head.on(ev as 'path-up', fn as (e: { path: string; reason: string }) => void);

    // Count completions here, so that progress goes out every second even when nothing completes.
    let ios = 0;
    let bytes = 0;
    let errors = 0;
    let inflight = 0;
    let mismatches = 0;
    const dev: BlockDevice = {
      blockSize: head.blockSize,
      nblocks: head.nblocks,
      read: async (slba, nlb) => {
        inflight++;
        try {
          const b = await head.read(slba, nlb);
          ios++;
          bytes += b.length;
          return b;
        } catch (err) {
          errors++;
          throw err;
        } finally {
          inflight--;
        }
      },
      write: async (slba, data) => {
        inflight++;
        try {
          await head.write(slba, data);
          ios++;
          bytes += data.length;
        } catch (err) {
          errors++;
          throw err;
        } finally {
          inflight--;
        }
      },
    };
    const start = head.state().counters;
    let last = { at: clock.now(), ios: 0, bytes: 0 };
    // Progress every second on the session's clock (a timer re-armed each time: Clock has no intervals).
    let tick: TimerHandle;
    const progress = (): void => {
      tick = clock.setTimeout(progress, 1000);
      const now = clock.now();
      const secs = Math.max(0.001, (now - last.at) / 1000);
      const st = head.state();
      ctx.stream?.({
        progress: {
          head: head.name,
          elapsedMs: Math.round(now - t0),
          phase: params.runtimeMs !== undefined && now - t0 > params.runtimeMs ? 'verify' : 'run',
          ios,
          iops: (ios - last.ios) / secs,
          mbps: (bytes - last.bytes) / secs / 1e6,
          inflight,
          errors,
          mismatches,
          failovers: st.counters.failovers - start.failovers,
          noPathMs: st.counters.noPathMs - start.noPathMs,
          paths: st.paths.map((x) => ({ name: x.name, state: x.state, ana: x.ana, active: x.active, usable: x.usable })),
        },
      });
      last = { at: now, ios, bytes };
    };
    tick = clock.setTimeout(progress, 1000);
    this.#log.info({ event: 'io-start', head: head.name, policy: head.policy, ...params }, 'io started');
    try {
      const blocks = params.sizeBytes !== undefined ? Math.floor(params.sizeBytes / head.blockSize) : undefined;
      let result;
      try {
        result = await runWorkload(dev, {
          rw: params.rw,
          bs: params.bs,
          qd: params.qd,
          verify: params.verify,
          ...(params.runtimeMs !== undefined ? { runtimeMs: params.runtimeMs } : {}),
          ...(params.ios !== undefined ? { ios: params.ios } : {}),
          ...(params.rwmixread !== undefined ? { rwmixread: params.rwmixread } : {}),
          ...(blocks !== undefined ? { spanBlocks: blocks } : {}),
          ...(params.seed !== undefined ? { seed: params.seed } : {}),
          ...(params.stallThresholdMs !== undefined ? { stallThresholdMs: params.stallThresholdMs } : {}),
          signal: abort.signal,
          clock,
          onProgress: (pr) => {
            mismatches = pr.mismatches;
          },
        });
      } catch (err) {
        if (err instanceof RangeError) throw new AgentRequestError(err.message);
        throw err;
      }
      const end = head.state().counters;
      const cut = <T>(a: readonly T[]): T[] => a.slice(0, SUMMARY_LIST_MAX);
      const summary: IoSummary = {
        head: head.name,
        policy: head.policy,
        params,
        cancelled: abort.signal.aborted,
        result: { ...result, errors: cut(result.errors), mismatches: cut(result.mismatches), stalls: cut(result.stalls) },
        totals: { errors: result.errors.length, mismatches: result.mismatches.length, stalls: result.stalls.length },
        counters: counterDelta(start, end),
        events: cut(events),
      };
      this.#log.info(
        {
          event: 'io-end',
          head: head.name,
          ios: result.ios,
          iops: Math.round(result.iops),
          errors: result.errors.length,
          mismatches: result.mismatches.length,
          maxStallMs: Math.round(result.maxStallMs),
          failovers: summary.counters.failovers,
          cancelled: summary.cancelled,
        },
        'io ended',
      );
      return summary;
    } finally {
      clock.clearTimeout(tick);
      for (const [ev, fn] of Object.entries(listeners)) head.off(ev as 'path-up', fn as (e: { path: string; reason: string }) => void);
      ctx.signal?.removeEventListener('abort', onAbort);
      this.#ioAborts.delete(abort);
      this.#running.delete(head.name);
    }
  }
}

// ---------------------------------------------------------------- the socket server

export interface AgentServerOptions {
  readonly socket: string;
  readonly logger: Logger;
  /** Called when the agent holds no controller and no client is connected (after it held one, or idleExitMs after start). */
  readonly onIdle?: () => void;
  /** Exit if nothing was ever connected within this long. Default 30 s. */
  readonly idleExitMs?: number;
}

export class AgentServer {
  readonly agent: HostAgent;
  readonly #o: AgentServerOptions;
  readonly #log: Logger;
  #server: net.Server | null = null;
  readonly #clients = new Set<net.Socket>();
  #idleTimer: TimerHandle | null = null;
  #busy = 0;
  /** The start-up grace is over: a controller was connected, or a request was answered. */
  #held = false;

  constructor(agent: HostAgent, o: AgentServerOptions) {
    this.agent = agent;
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent-control' });
    agent.session.on('controller-added', () => (this.#held = true));
    agent.session.on('controller-removed', () => setImmediate(() => this.#checkIdle()));
  }

  async listen(): Promise<void> {
    const file = this.#o.socket;
    mkdirSync(path.dirname(file), { recursive: true });
    if (existsSync(file)) {
      const live = await new Promise<boolean>((resolve) => {
        const probe = net.connect(file, () => {
          probe.destroy();
          resolve(true);
        });
        probe.on('error', () => resolve(false));
      });
      if (live) throw new AgentRequestError(`socket ${file} is in use by another host agent`);
      unlinkSync(file);
    }
    const server = net.createServer((s) => this.#onClient(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
    this.#server = server;
    this.#idleTimer = this.agent.session.clock.setTimeout(() => {
      this.#idleTimer = null;
      this.#checkIdle();
    }, this.#o.idleExitMs ?? 30_000);
  }

  async close(): Promise<void> {
    if (this.#idleTimer) this.agent.session.clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    const server = this.#server;
    this.#server = null;
    if (server) {
      server.close();
      try {
        unlinkSync(this.#o.socket);
      } catch {
        // gone already
      }
    }
    for (const c of this.#clients) c.destroy();
  }

  #checkIdle(): void {
    if (!this.#server) return;
    if (this.agent.controllerCount > 0 || this.#clients.size > 0 || this.#busy > 0 || this.agent.ioRunning) return;
    // A fresh agent waits for its first request (the CLI that started it is about to connect).
    if (!this.#held && this.#idleTimer !== null) return;
    this.#log.info({ event: 'agent-idle' }, 'no controller left: the host agent exits');
    this.#o.onIdle?.();
  }

  #onClient(sock: net.Socket): void {
    this.#clients.add(sock);
    const aborts = new Map<unknown, AbortController>();
    let buffered = '';
    sock.setEncoding('utf8');
    const send = (msg: object) => {
      if (sock.writable) sock.write(`${JSON.stringify(msg)}\n`);
    };
    sock.on('data', (text: string) => {
      buffered += text;
      if (buffered.length > 1 << 24) {
        send({ id: null, ok: false, error: 'request larger than 16 MiB' });
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) void this.#handle(line, send, aborts);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      for (const a of aborts.values()) a.abort();
      this.#clients.delete(sock);
      setImmediate(() => this.#checkIdle());
    });
  }

  async #handle(line: string, send: (msg: object) => void, aborts: Map<unknown, AbortController>): Promise<void> {
    let id: unknown = null;
    this.#busy++;
    try {
      const req = parseAgentRequest(line);
      id = req.id;
      if ('error' in req) throw req.error;
      const { method, params } = req;
      if (method === 'cancel') {
        const a = aborts.get(params['id']);
        a?.abort();
        send({ id, ok: true, result: { cancelled: a !== undefined } });
        return;
      }
      const abort = new AbortController();
      aborts.set(id, abort);
      try {
        const result = await this.agent.dispatch(method, params, { stream: (m) => send({ id, ...m }), signal: abort.signal });
        send({ id, ok: true, result: result ?? null });
      } finally {
        aborts.delete(id);
      }
    } catch (err) {
      const message =
        err instanceof AgentRequestError || err instanceof HostError || (err as Error).name === 'MultipathError'
          ? (err as Error).message
          : `internal error: ${(err as Error).message}`;
      if (!(err instanceof AgentRequestError || err instanceof HostError)) this.#log.error({ err: (err as Error).stack }, 'request failed');
      else this.#log.warn({ error: message }, 'request refused');
      send({ id, ok: false, error: message });
    } finally {
      this.#busy--;
      this.#held = true;
    }
  }
}

// ---------------------------------------------------------------- main

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const socket = argValue(argv, '--socket');
  if (!socket) {
    process.stderr.write('nvmets-host agent: --socket PATH is required (the CLI starts the agent: nvmets-host connect ...)\n');
    process.exit(2);
  }
  const logFile = argValue(argv, '--log') ?? agentLogPath(socket);
  const level = argValue(argv, '--log-level') ?? 'info';
  const logger = pino(
    { level, name: 'nvmets-host', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: logFile, sync: true, mkdir: true }),
  );
  // The agent process is an edge: its feature switches come from its environment (inherited from the CLI).
  const agent = new HostAgent({ logger, socket, logFile, switches: featureSwitchesFromEnv() });
  let stopping = false;
  const stop = async (why: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'agent-stop', reason: why }, 'host agent stopping');
    await server.close();
    await agent.close();
    logger.info({ event: 'agent-exit' }, 'host agent exited');
    process.exit(code);
  };
  const server = new AgentServer(agent, { socket, logger, onIdle: () => void stop('no controller left') });
  try {
    await server.listen();
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'host agent cannot listen');
    process.stderr.write(`nvmets-host agent: ${(err as Error).message}\n`);
    process.exit(1);
  }
  logger.info({ event: 'agent-ready', socket, log: logFile }, 'host agent ready');
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => undefined);
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: err.stack }, 'uncaught exception');
    void stop('uncaught exception', 1);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  void main();
}
