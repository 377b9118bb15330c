/**
 * The target: ports, subsystems, the discovery service, and every run-time
 * change to them (the control API calls these methods).
 *
 * Active-standby lives here: activation of a port for an ANA group (0xFE,
 * implicit promotion, the control API) demotes the old port at once, fences it
 * (waits until no command it started is still executing on the group's
 * namespaces), then makes the new port optimized and raises ANA-change events.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { AnaState, anaStateName, parseAnaState, type AnaStateValue } from '../shared/log-pages.ts';
import { nguidToBytes, uuidToBytes, eui64ToBytes, bytesToNguid, bytesToUuid } from '../shared/identify.ts';
import { Status } from '../shared/status.ts';
import { realClock, type Clock } from '../shared/clock.ts';
import { defaultFeatureSwitches, type FeatureSwitches } from '../shared/feature-switches.ts';
import type { HostAuthConfig, NamespaceConfig, PortConfig, TargetConfig } from './config/index.ts';
import { queueAuthView, type QueueAuthView } from './auth.ts';
import { Controller, type ControllerOptions } from './controller.ts';
import type { DataPathCounters, TargetCore, TargetLimits } from './core.ts';
import { DiscoveryService, type DiscoverySource } from './discovery.ts';
import { ANATT_SECONDS } from './admin-cmd.ts';
import { Cluster, ClusterError } from './cluster.ts';
import { portMqes } from './fabrics-cmd.ts';
import { silentLogger, type Logger } from './logger.ts';
import { Namespace } from './namespace.ts';
import { Port } from './port.ts';
import type { Completion } from './request.ts';
import { SMALL_CHUNK_SIZE, openStore } from './store/index.ts';
import { Subsystem } from './subsystem.ts';
import { LoopPort, type LoopHandlers, type LoopQueue } from './loop.ts';
import { PortListener, type TcpQueue } from './tcp.ts';

export const DEFAULT_LIMITS: TargetLimits = {
  mdts: 8, // 1 MiB
  mqes: 1023,
  maxConnectionsPerPort: 1024,
  maxIoQueues: 128,
};

export interface TargetOptions {
  log?: Logger;
  /** Every timer and time read of the target (default: real time). */
  clock?: Clock;
  /** Data-path switches, read once at the edge (target/cli.ts: featureSwitchesFromEnv). Default: all on. */
  switches?: FeatureSwitches;
  limits?: Partial<TargetLimits>;
  /** Where active paths are persisted for subsystems with persist_active. */
  stateDir?: string;
}

export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

export class Target implements TargetCore, DiscoverySource {
  readonly log: Logger;
  readonly limits: TargetLimits;
  readonly clock: Clock;
  readonly startedAt: number;
  readonly switches: FeatureSwitches;
  readonly counters: DataPathCounters = { directReadBytes: 0, stagedWrites: 0 };
  readonly discovery: DiscoveryService;
  readonly subsystems = new Map<string, Subsystem>();
  readonly portMap = new Map<number, Port>();
  readonly #listeners = new Map<number, PortListener>();
  /** In-process loopback queues per port (loop.ts), closed with the port as its TCP connections are. */
  readonly #loopPorts = new Map<number, LoopPort>();
  readonly #stateDir: string;
  #stopped = false;
  readonly config: TargetConfig;
  /** With ext.cluster: this process is one node of a multi-node target (target/cluster.ts). */
  cluster: Cluster | null = null;

  private constructor(config: TargetConfig, opts: TargetOptions) {
    this.config = config;
    this.log = opts.log ?? silentLogger;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.clock = opts.clock ?? realClock;
    this.startedAt = this.clock.now();
    this.switches = opts.switches ?? defaultFeatureSwitches;
    this.#stateDir = opts.stateDir ?? path.join(os.tmpdir(), 'nvmets-state');
    this.discovery = new DiscoveryService(config.discoveryNqn, this, this.log);
  }

  get maxConnectionsPerPort(): number {
    return this.limits.maxConnectionsPerPort;
  }

  /** Build a target from a validated configuration: opens every store. */
  static async create(config: TargetConfig, opts: TargetOptions = {}): Promise<Target> {
    const t = new Target(config, opts);
    try {
      for (const pc of config.ports) t.portMap.set(pc.portid, new Port(pc, t.clock));
      for (const sc of config.subsystems) {
        const subsys = new Subsystem(sc);
        t.subsystems.set(sc.nqn, subsys);
        for (const nc of sc.namespaces) {
          const ns = await openNamespace(nc);
          subsys.namespaces.set(nc.nsid, ns);
        }
        if (sc.mode === 'active-standby') {
          for (const nc of sc.namespaces) {
            const initial = nc.initialActivePort ?? sc.initialActivePort ?? sc.ports[0];
            if (initial !== undefined && initial !== null && !subsys.activePort.has(nc.anaGrpid)) subsys.activePort.set(nc.anaGrpid, initial);
          }
          if (sc.persistActive && !config.cluster) await t.#loadActiveState(subsys);
        }
      }
      if (config.cluster) {
        // The active paths come from etcd (created from the configuration by the first node).
        t.cluster = new Cluster(config.cluster, t, t.log);
        await t.cluster.join();
      }
    } catch (err) {
      await t.cluster?.close();
      await t.#closeStores();
      throw err;
    }
    return t;
  }

  // ---------------------------------------------------------------- TargetCore / DiscoverySource

  hostDhchap(hostnqn: string): HostAuthConfig | undefined {
    return this.config.hostAuth?.find((h) => h.nqn === hostnqn);
  }

  /**
   * Replace a host's DH-HMAC-CHAP settings at runtime (null: no key, not
   * authenticated), as writing nvmet's hosts/<nqn>/dhchap_* does: live
   * controllers keep running and use the new settings from their next
   * transaction (the admin queue's AUTH_Negotiate re-reads them, see auth.ts).
   */
  setHostDhchap(hostnqn: string, auth: HostAuthConfig | null): void {
    if (!this.config.hosts.includes(hostnqn)) {
      throw new ControlError(
        `no host ${JSON.stringify(hostnqn)} in the configuration's hosts (${this.config.hosts.map((h) => JSON.stringify(h)).join(', ') || 'none'})`,
      );
    }
    const others = (this.config.hostAuth ?? []).filter((h) => h.nqn !== hostnqn);
    this.config.hostAuth = auth ? [...others, auth] : others;
  }

  ports(): Iterable<Port> {
    return this.portMap.values();
  }

  port(portid: number): Port {
    const p = this.portMap.get(portid);
    if (!p) throw new ControlError(`no port ${portid} (ports: ${[...this.portMap.keys()].join(', ') || 'none'})`);
    return p;
  }

  subsystem(nqn: string): Subsystem {
    const s = this.subsystems.get(nqn);
    if (!s) throw new ControlError(`no subsystem ${nqn}`);
    return s;
  }

  findSubsystem(nqn: string): Subsystem | undefined {
    return this.subsystems.get(nqn);
  }

  createController(opts: Omit<ControllerOptions, 'log' | 'onGone' | 'maxIoQueues' | 'mqes'>): Controller {
    const ctrl = new Controller({
      ...opts,
      log: this.log,
      clock: this.clock,
      maxIoQueues: Math.min(opts.subsystem?.config.qidMax ?? this.limits.maxIoQueues, this.limits.maxIoQueues),
      mqes: portMqes(this.limits.mqes, opts.port),
      onGone: (c, reason) => this.#controllerGone(c, reason),
    });
    if (opts.kind === 'discovery') this.discovery.controllers.set(ctrl.cntlid, ctrl);
    else if (opts.subsystem) {
      const subsys = opts.subsystem;
      subsys.controllers.set(ctrl.cntlid, ctrl);
      if (this.cluster?.manages(subsys)) {
        this.cluster.controllerAdded(subsys, ctrl);
        return ctrl;
      }
      // Implicit promotion of groups that lost every controller earlier.
      if (subsys.mode === 'active-standby' && subsys.config.promotion === 'implicit') {
        for (const grpid of [...subsys.orphanedGroups]) {
          if (subsys.activePort.get(grpid) === ctrl.port.portid) {
            subsys.orphanedGroups.delete(grpid);
            continue;
          }
          void this.activate(subsys, grpid, ctrl.port.portid, `implicit promotion: first controller after the active port lost all`);
        }
      }
    }
    return ctrl;
  }

  #controllerGone(ctrl: Controller, reason: string): void {
    if (ctrl.kind === 'discovery') {
      this.discovery.controllers.delete(ctrl.cntlid);
      return;
    }
    const subsys = ctrl.subsystem!;
    subsys.controllers.delete(ctrl.cntlid);
    this.#promoteAwayFrom(subsys, ctrl.port.portid, reason);
  }

  /**
   * Implicit promotion: the groups active on a port that has no live
   * controller left (its last one went, or the port went down without any)
   * move to the next port with one, or to the next controller to connect.
   */
  #promoteAwayFrom(subsys: Subsystem, portid: number, reason: string): void {
    if (this.#stopped || subsys.mode !== 'active-standby' || subsys.config.promotion !== 'implicit') return;
    if (subsys.controllersOn(portid).some((c) => !c.isGone)) return;
    if (this.cluster?.manages(subsys)) {
      this.cluster.portLostControllers(subsys, portid, reason);
      return;
    }
    for (const [grpid, active] of subsys.activePort) {
      if (active !== portid) continue;
      const next = this.#promotionCandidate(subsys, portid);
      if (next === null) {
        subsys.orphanedGroups.add(grpid);
        this.log.warn(
          { subnqn: subsys.nqn, grpid, port: portid, reason },
          'active port lost its last controller and no other port has one: the next controller to connect takes the group',
        );
      } else {
        void this.activate(subsys, grpid, next, `implicit promotion: port ${portid} lost its last controller (${reason})`);
      }
    }
  }

  /** The next port after `from` (in the subsystem's port order) with a live controller. */
  #promotionCandidate(subsys: Subsystem, from: number): number | null {
    const order = subsys.config.ports;
    const start = order.indexOf(from);
    for (let i = 1; i <= order.length; i++) {
      const portid = order[(start + i) % order.length]!;
      if (portid === from) continue;
      const port = this.portMap.get(portid);
      if (port?.state === 'up' && subsys.controllersOn(portid).some((c) => !c.isGone)) return portid;
    }
    return null;
  }

  async setNamespaceActive(ctrl: Controller, nsid: number): Promise<Completion> {
    const subsys = ctrl.subsystem!;
    const ns = subsys.namespaces.get(nsid)!;
    const started = this.clock.now();
    try {
      await this.activate(subsys, ns.anagrpid, ctrl.port.portid, `Set Namespace Active (0xFE) nsid ${nsid} from cntlid ${ctrl.cntlid}`);
    } catch (err) {
      if (!(err instanceof ClusterError)) throw err;
      // A path error (DNR clear): the host may retry, or try another path.
      ctrl.log.warn({ nsid, grpid: ns.anagrpid, err: err.message, status: err.status }, 'Set Namespace Active (0xFE) failed');
      return { status: err.status };
    }
    ctrl.log.info({ nsid, grpid: ns.anagrpid, ms: +(this.clock.now() - started).toFixed(3) }, 'namespace active on this path (0xFE)');
    return { status: 0 };
  }

  // ---------------------------------------------------------------- active-standby

  readonly #activations = new Map<string, Promise<void>>();

  /**
   * Make `portid` the active port of an ANA group. The old port is demoted at
   * once (its I/O now fails with ANA Inaccessible, the new port reports ANA
   * Change until fencing is done), every command the other ports started on
   * the group's namespaces is waited for, then the new port turns optimized.
   * Activations of one group run one after the other.
   */
  activate(subsys: Subsystem, grpid: number, portid: number, reason: string): Promise<void> {
    if (this.cluster?.manages(subsys)) return this.cluster.activate(subsys, grpid, portid, reason);
    const key = `${subsys.nqn}\u0000${grpid}`;
    const prev = this.#activations.get(key) ?? Promise.resolve();
    const next = prev.then(() => this.#doActivate(subsys, grpid, portid, reason));
    this.#activations.set(key, next);
    void next.finally(() => {
      if (this.#activations.get(key) === next) this.#activations.delete(key);
    });
    return next;
  }

  async #doActivate(subsys: Subsystem, grpid: number, portid: number, reason: string): Promise<void> {
    const old = subsys.activePort.get(grpid);
    const port = this.portMap.get(portid)!;
    const namespaces = [...subsys.namespaces.values()].filter((n) => n.anagrpid === grpid);
    if (old === portid) {
      subsys.orphanedGroups.delete(grpid);
      // Already active: still make sure nothing from another port is in flight.
      await Promise.all(namespaces.map((n) => n.drain((p) => p !== portid)));
      return;
    }
    const t0 = this.clock.now();
    subsys.orphanedGroups.delete(grpid);
    subsys.activePort.delete(grpid);
    const fence = { to: AnaState.Optimized as AnaStateValue, timer: null };
    port.transitions.set(grpid, fence);
    subsys.bumpAnaChange(grpid);
    // Fencing: nothing started through another port may still be executing.
    await Promise.all(namespaces.map((n) => n.drain((p) => p !== portid)));
    if (port.transitions.get(grpid) === fence) port.transitions.delete(grpid);
    subsys.activePort.set(grpid, portid);
    subsys.bumpAnaChange(grpid);
    const fenceMs = +(this.clock.now() - t0).toFixed(3);
    this.log.info({ subnqn: subsys.nqn, grpid, from: old ?? null, to: portid, fenceMs, reason }, 'active path moved');
    this.#notifyAnaChange(
      subsys,
      [old, portid].filter((p): p is number => p !== undefined),
    );
    if (subsys.config.persistActive) await this.#saveActiveState(subsys);
  }

  /** ANA-change event to every controller of the subsystem on these ports. */
  #notifyAnaChange(subsys: Subsystem, portids: number[]): void {
    for (const c of subsys.controllers.values()) if (portids.includes(c.port.portid)) c.raiseEvent('ana-change');
  }

  #stateFile(subsys: Subsystem): string {
    return path.join(this.#stateDir, `${subsys.nqn.replace(/[^A-Za-z0-9._-]/g, '_')}.active.json`);
  }

  async #loadActiveState(subsys: Subsystem): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#stateFile(subsys), 'utf8');
    } catch {
      return;
    }
    try {
      const saved = JSON.parse(text) as Record<string, number>;
      for (const [g, p] of Object.entries(saved)) {
        const grpid = Number(g);
        if (subsys.activePort.has(grpid) && this.portMap.has(p) && subsys.config.ports.includes(p)) subsys.activePort.set(grpid, p);
      }
      this.log.info({ subnqn: subsys.nqn, file: this.#stateFile(subsys) }, 'active paths restored');
    } catch (err) {
      this.log.warn({ err, file: this.#stateFile(subsys) }, 'ignoring unreadable active-path state file');
    }
  }

  async #saveActiveState(subsys: Subsystem): Promise<void> {
    await mkdir(this.#stateDir, { recursive: true });
    await writeFile(this.#stateFile(subsys), JSON.stringify(Object.fromEntries(subsys.activePort)), 'utf8');
  }

  /** Control API: make a port active for a namespace's group. */
  async setActivePort(nqn: string, nsid: number, portid: number): Promise<void> {
    const subsys = this.subsystem(nqn);
    if (subsys.mode !== 'active-standby') throw new ControlError(`subsystem ${nqn} is in ana mode: set ANA states per port instead`);
    const ns = subsys.namespaces.get(nsid);
    if (!ns) throw new ControlError(`subsystem ${nqn} has no namespace ${nsid}`);
    if (!subsys.config.ports.includes(portid)) throw new ControlError(`port ${portid} does not export ${nqn}`);
    this.#localPort(portid);
    try {
      await this.activate(subsys, ns.anagrpid, portid, 'control API');
    } catch (err) {
      if (err instanceof ClusterError) throw new ControlError(`cannot move the active path: ${err.message}`);
      throw err;
    }
  }

  // ---------------------------------------------------------------- ANA (ana mode)

  /**
   * Control API: set the ANA state of a group on a port. With transitionMs the
   * group reports ANA Change first, for at most ANATT.
   */
  setAnaState(portid: number, grpid: number, stateName: string, transitionMs = 0): void {
    const port = this.port(portid);
    let state: AnaStateValue;
    try {
      state = parseAnaState(stateName);
    } catch {
      throw new ControlError(`"${stateName}" is not an ANA state (optimized, non-optimized, inaccessible, persistent-loss, change)`);
    }
    if (!Number.isInteger(grpid) || grpid < 1 || grpid > 128) throw new ControlError(`ANA group ${grpid} out of range 1..128`);
    if (!Number.isFinite(transitionMs) || transitionMs < 0 || transitionMs > ANATT_SECONDS * 1000) {
      throw new ControlError(`transition ${transitionMs} ms must be between 0 and ANATT (${ANATT_SECONDS * 1000} ms)`);
    }
    const blocking = [...port.subsystems].map((n) => this.subsystems.get(n)).filter((s) => s?.mode === 'active-standby' && s.usedGroups().includes(grpid));
    if (blocking.length) {
      throw new ControlError(`group ${grpid} on port ${portid} belongs to active-standby subsystem ${blocking[0]!.nqn}: move its active path instead`);
    }
    const pending = port.transitions.get(grpid);
    if (pending) this.clock.clearTimeout(pending.timer);
    port.transitions.delete(grpid);
    if (transitionMs > 0) {
      const timer = this.clock.setTimeout(() => {
        port.transitions.delete(grpid);
        port.anaStates.set(grpid, state);
        this.#anaChanged(port, grpid, `transition to ${stateName} done`);
      }, transitionMs);
      port.transitions.set(grpid, { to: state, timer });
      this.#anaChanged(port, grpid, `transition to ${stateName} (${transitionMs} ms)`);
    } else {
      port.anaStates.set(grpid, state);
      this.#anaChanged(port, grpid, `set to ${stateName}`);
    }
  }

  #anaChanged(port: Port, grpid: number, what: string): void {
    this.log.info({ port: port.portid, grpid, what }, 'ANA state changed');
    for (const nqn of port.subsystems) {
      const subsys = this.subsystems.get(nqn);
      if (!subsys || subsys.mode !== 'ana' || !subsys.reportedGroups(port).includes(grpid)) continue;
      subsys.bumpAnaChange(grpid);
      this.#notifyAnaChange(subsys, [port.portid]);
    }
  }

  // ---------------------------------------------------------------- ports

  async start(): Promise<void> {
    for (const port of this.portMap.values()) if (!this.isRemote(port)) await this.portUp(port.portid);
  }

  /** A port another cluster node serves: known by its portid, never listened on here. */
  isRemote(port: Port): boolean {
    return this.config.cluster !== null && port.config.node !== this.config.cluster.node;
  }

  /** A port this process serves (run-time changes and faults apply only to those). */
  #localPort(portid: number): Port {
    const port = this.port(portid);
    if (this.isRemote(port))
      throw new ControlError(`port ${portid} is served by cluster node ${port.config.node}, not by this node (${this.config.cluster!.node}): ask that node`);
    return port;
  }

  /**
   * An in-process loopback queue on a port that is up (loop.ts): the same
   * core as NVMe/TCP without a socket. It starts as a new connection does:
   * its first command must be a Connect.
   */
  loopConnect(portid: number, handlers: LoopHandlers): LoopQueue {
    const port = this.#localPort(portid);
    let lp = this.#loopPorts.get(portid);
    if (!lp) {
      lp = new LoopPort(port, this);
      this.#loopPorts.set(portid, lp);
    }
    return lp.connect(handlers);
  }

  /** The TCP connections on a port (diagnostics, tests that stall a connection below the transport). */
  connections(portid: number): Iterable<TcpQueue> {
    return this.#listeners.get(portid)?.connections ?? [];
  }

  /** The TCP port a target port listens on (after start). */
  boundPort(portid: number): number {
    return this.port(portid).config.trsvcid;
  }

  async portUp(portid: number): Promise<void> {
    const port = this.#localPort(portid);
    if (port.state === 'up') return;
    let listener = this.#listeners.get(portid);
    if (!listener) {
      listener = new PortListener(port, this);
      this.#listeners.set(portid, listener);
    }
    const bound = await listener.start();
    if (port.config.trsvcid === 0) {
      // Port 0 in the config: record the port the OS chose, and advertise it.
      port.config = { ...port.config, trsvcid: bound, advertise: { ...port.config.advertise, trsvcid: port.config.advertise.trsvcid || bound } };
    }
    port.state = 'up';
    this.log.info({ port: portid, listen: port.listenAddress }, 'port up');
    this.discovery.changed(`port ${portid} up`);
  }

  /** Close the listener and reset its connections: controllers on it are gone. */
  async portDown(portid: number): Promise<void> {
    const port = this.#localPort(portid);
    if (port.state === 'down') return;
    port.state = 'down';
    this.log.info({ port: portid }, 'port down: listener closed, connections reset');
    await this.#listeners.get(portid)?.stop('port down');
    this.#loopPorts.get(portid)?.stop('port down');
    // Controllers on the port went with its connections (and promoted away from
    // it); a port that had none must not keep its groups active either.
    for (const subsys of this.subsystems.values()) {
      if (subsys.config.ports.includes(portid)) this.#promoteAwayFrom(subsys, portid, `port ${portid} down`);
    }
    this.discovery.changed(`port ${portid} down`);
  }

  async addPort(pc: PortConfig): Promise<void> {
    if (this.portMap.has(pc.portid)) throw new ControlError(`port ${pc.portid} exists`);
    if (this.cluster)
      throw new ControlError("ports cannot be added at run time on a cluster node: change every node's configuration and restart the nodes one by one");
    for (const nqn of pc.subsystems) this.subsystem(nqn);
    const port = new Port(pc, this.clock);
    this.portMap.set(pc.portid, port);
    for (const nqn of pc.subsystems) {
      const subsys = this.subsystems.get(nqn)!;
      if (!subsys.config.ports.includes(pc.portid)) subsys.config.ports.push(pc.portid);
      for (const g of subsys.usedGroups()) if (!port.anaStates.has(g)) port.anaStates.set(g, AnaState.Inaccessible);
    }
    try {
      await this.portUp(pc.portid);
    } catch (err) {
      this.portMap.delete(pc.portid);
      this.#listeners.delete(pc.portid);
      for (const nqn of pc.subsystems) {
        const sc = this.subsystems.get(nqn)!.config;
        sc.ports = sc.ports.filter((p) => p !== pc.portid);
      }
      throw new ControlError(`port ${pc.portid} cannot listen on ${port.listenAddress}: ${(err as Error).message}`);
    }
  }

  async removePort(portid: number): Promise<void> {
    const port = this.#localPort(portid);
    if (this.cluster)
      throw new ControlError(
        "ports cannot be removed at run time on a cluster node: use port.down, or change every node's configuration and restart the nodes one by one",
      );
    for (const nqn of port.subsystems) {
      const subsys = this.subsystems.get(nqn);
      if (subsys?.mode === 'active-standby' && [...subsys.activePort.values()].includes(portid) && subsys.config.ports.length > 1) {
        // Removing the active port: promotion follows from its controllers going.
      }
    }
    await this.portDown(portid);
    port.clearTransitions();
    this.#listeners.delete(portid);
    this.portMap.delete(portid);
    for (const subsys of this.subsystems.values()) subsys.config.ports = subsys.config.ports.filter((p) => p !== portid);
    this.log.info({ port: portid }, 'port removed');
  }

  // ---------------------------------------------------------------- faults (control API)

  /** Connections on the port stay open but nothing is read or answered (new ones too). */
  setBlackhole(portid: number, on: boolean): void {
    const port = this.#localPort(portid);
    port.faults.blackhole = on;
    for (const q of this.#listeners.get(portid)?.connections ?? []) {
      if (on) q.freeze();
      else q.thaw();
    }
    this.log.warn({ port: portid, fault: 'blackhole', on }, on ? 'fault: port blackholed' : 'fault cleared: blackhole');
  }

  setLatency(portid: number, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0 || ms > 600_000) throw new ControlError(`latency ${ms} ms out of range 0..600000`);
    this.#localPort(portid).faults.latencyMs = ms;
    this.log.warn({ port: portid, fault: 'latency', ms }, ms ? `fault: ${ms} ms added to every completion` : 'fault cleared: latency');
  }

  /** Reset every connection on the port; the listener stays up. */
  dropConnections(portid: number): number {
    this.#localPort(portid);
    const conns = [...(this.#listeners.get(portid)?.connections ?? [])];
    for (const q of conns) q.destroy('fault: connection dropped');
    this.log.warn({ port: portid, fault: 'drop', connections: conns.length }, 'fault: connections dropped');
    return conns.length;
  }

  /** Fail the next `count` commands on the port matching opcode/nsid/queue with `status`. */
  failNext(portid: number, rule: { count: number; status: number; opcode?: number | null; nsid?: number | null; queue?: 'io' | 'admin' | null }): void {
    const port = this.#localPort(portid);
    if (!Number.isInteger(rule.count) || rule.count < 1) throw new ControlError(`count ${rule.count} must be a positive integer`);
    if (!Number.isInteger(rule.status) || rule.status < 1 || rule.status > 0x7fff)
      throw new ControlError(`status ${rule.status} is not an NVMe status (1..0x7fff)`);
    port.faults.failRules.push({ opcode: rule.opcode ?? null, nsid: rule.nsid ?? null, queue: rule.queue ?? null, status: rule.status, remaining: rule.count });
    this.log.warn({ port: portid, fault: 'fail', ...rule }, 'fault: next commands will fail');
  }

  clearFaults(portid: number): void {
    const port = this.#localPort(portid);
    if (port.faults.blackhole) this.setBlackhole(portid, false);
    port.faults.latencyMs = 0;
    port.faults.failRules.length = 0;
    this.log.warn({ port: portid }, 'fault cleared: all faults on port');
  }

  // ---------------------------------------------------------------- namespaces

  async addNamespace(nqn: string, nc: NamespaceConfig): Promise<void> {
    const subsys = this.subsystem(nqn);
    if (this.cluster?.manages(subsys))
      throw new ControlError("namespaces cannot be added at run time on a cluster node: change every node's configuration and restart the nodes one by one");
    if (subsys.namespaces.has(nc.nsid)) throw new ControlError(`subsystem ${nqn} already has namespace ${nc.nsid}`);
    for (const ns of subsys.namespaces.values()) {
      if (bytesToNguid(ns.identity.nguid) === nc.nguid.replace(/-/g, '').toLowerCase())
        throw new ControlError(`nguid ${nc.nguid} is used by namespace ${ns.nsid}`);
      if (bytesToUuid(ns.identity.uuid) === nc.uuid.toLowerCase()) throw new ControlError(`uuid ${nc.uuid} is used by namespace ${ns.nsid}`);
    }
    const ns = await openNamespace(nc);
    subsys.namespaces.set(nc.nsid, ns);
    if (subsys.mode === 'active-standby' && !subsys.activePort.has(nc.anaGrpid)) {
      const initial = nc.initialActivePort ?? subsys.config.initialActivePort ?? subsys.config.ports[0];
      if (initial !== undefined && initial !== null) subsys.activePort.set(nc.anaGrpid, initial);
    }
    subsys.bumpAnaChange(nc.anaGrpid);
    this.log.info({ subnqn: nqn, nsid: nc.nsid }, 'namespace added');
    this.#namespaceChanged(subsys, nc.nsid);
  }

  async removeNamespace(nqn: string, nsid: number): Promise<void> {
    const subsys = this.subsystem(nqn);
    if (this.cluster?.manages(subsys))
      throw new ControlError("namespaces cannot be removed at run time on a cluster node: change every node's configuration and restart the nodes one by one");
    const ns = subsys.namespaces.get(nsid);
    if (!ns) throw new ControlError(`subsystem ${nqn} has no namespace ${nsid}`);
    ns.enabled = false;
    await ns.drain(() => true);
    subsys.namespaces.delete(nsid);
    await ns.store.close();
    subsys.bumpAnaChange(ns.anagrpid);
    if (![...subsys.namespaces.values()].some((n) => n.anagrpid === ns.anagrpid)) subsys.activePort.delete(ns.anagrpid);
    this.log.info({ subnqn: nqn, nsid }, 'namespace removed');
    this.#namespaceChanged(subsys, nsid);
  }

  #namespaceChanged(subsys: Subsystem, nsid: number): void {
    for (const c of subsys.controllers.values()) {
      c.changedNamespaces.add(nsid);
      c.raiseEvent('namespace-attribute');
      c.raiseEvent('ana-change');
    }
  }

  // ---------------------------------------------------------------- state and shutdown

  snapshot(): TargetSnapshot {
    return {
      ports: [...this.portMap.values()].map((p) => ({
        portid: p.portid,
        listen: p.listenAddress,
        advertise: `${p.config.advertise.traddr}:${p.config.advertise.trsvcid}`,
        state: p.state,
        subsystems: [...p.subsystems],
        anaGroups: p.groups().map((g) => ({ grpid: g, state: anaStateName(p.transitions.has(g) ? AnaState.Change : p.anaStates.get(g)!) })),
        connections: this.#listeners.get(p.portid)?.connections.size ?? 0,
        faults: p.faults.describe(),
        ...(p.config.node !== null ? { node: p.config.node } : {}),
      })),
      subsystems: [...this.subsystems.values()].map((s) => ({
        nqn: s.nqn,
        mode: s.mode,
        promotion: s.config.promotion,
        anaChgcnt: s.anaChgcnt.toString(),
        namespaces: [...s.namespaces.values()].map((n) => ({
          nsid: n.nsid,
          nguid: bytesToNguid(n.identity.nguid),
          uuid: bytesToUuid(n.identity.uuid),
          anagrpid: n.anagrpid,
          blockSize: n.blockSize,
          nblocks: n.nblocks,
          store: n.store.kind,
          allocatedBytes: n.store.allocatedBytes(),
          readCommands: n.counters.readCommands.toString(),
          writeCommands: n.counters.writeCommands.toString(),
        })),
        paths: s.config.ports.flatMap((portid) => {
          const port = this.portMap.get(portid);
          if (!port) return [];
          return s.usedGroups().map((grpid) => ({
            portid,
            grpid,
            state: anaStateName(s.anaState(port, grpid)),
            active: s.mode === 'active-standby' ? s.activePort.get(grpid) === portid : null,
          }));
        }),
        controllers: [...s.controllers.values()].map((c) => controllerView(c)),
      })),
      discovery: {
        nqn: this.discovery.nqn,
        genctr: this.discovery.genctr.toString(),
        controllers: [...this.discovery.controllers.values()].map(controllerView),
      },
      ...(this.cluster ? { cluster: this.cluster.describe() } : {}),
    };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const [portid, l] of this.#listeners) {
      await l.stop('target shutdown');
      this.#loopPorts.get(portid)?.stop('target shutdown');
      const port = this.portMap.get(portid);
      if (port) port.state = 'down';
    }
    for (const p of this.portMap.values()) p.clearTransitions();
    for (const s of this.subsystems.values()) for (const c of [...s.controllers.values()]) c.destroy('target shutdown');
    for (const c of [...this.discovery.controllers.values()]) c.destroy('target shutdown');
    await this.#closeStores();
    // Only now (nothing executes, stores flushed) may the other nodes take our groups without waiting.
    await this.cluster?.close();
    this.log.info('target stopped');
  }

  async #closeStores(): Promise<void> {
    const all = [...this.subsystems.values()].flatMap((s) => [...s.namespaces.values()]);
    await Promise.allSettled(
      all.map(async (ns) => {
        await ns.drain(() => true);
        await ns.store.flush();
        await ns.store.close();
      }),
    );
  }
}

async function openNamespace(nc: NamespaceConfig): Promise<Namespace> {
  const store = await openStore({
    kind: nc.store.kind,
    blockSize: nc.store.blockSize,
    sizeBytes: nc.store.sizeBytes,
    path: nc.store.path,
    createIfMissing: nc.store.createIfMissing,
    // Memory: 4 KiB chunks, so a sparse namespace under small random writes costs what was written.
    chunkSize: SMALL_CHUNK_SIZE,
  });
  return new Namespace({
    nsid: nc.nsid,
    identity: { nguid: nguidToBytes(nc.nguid), uuid: uuidToBytes(nc.uuid), eui64: eui64ToBytes(nc.eui64) },
    store,
    anagrpid: nc.anaGrpid,
    enabled: nc.enabled,
  });
}

function controllerView(c: Controller): ControllerView {
  return {
    cntlid: c.cntlid,
    hostnqn: c.hostnqn,
    portid: c.port.portid,
    kato: c.katoMs,
    ready: c.ready,
    queues: [...c.queues.values()].map((q) => {
      const auth = queueAuthView(q);
      return { qid: q.qid, peer: q.remoteAddress, sqsize: q.sqsize, outstanding: q.outstanding, ...(auth ? { auth } : {}) };
    }),
  };
}

export interface ControllerView {
  cntlid: number;
  hostnqn: string;
  portid: number;
  kato: number;
  ready: boolean;
  queues: { qid: number; peer: string; sqsize: number; outstanding: number; auth?: QueueAuthView }[];
}

export interface TargetSnapshot {
  ports: {
    portid: number;
    listen: string;
    advertise: string;
    state: 'up' | 'down';
    subsystems: string[];
    anaGroups: { grpid: number; state: string }[];
    connections: number;
    faults: {
      blackhole: boolean;
      latencyMs: number;
      failRules: { opcode: number | null; nsid: number | null; queue: 'io' | 'admin' | null; status: number; remaining: number }[];
    };
    /** With ext.cluster: the node serving the port (another node's ports are listed with state "down"). */
    node?: string;
  }[];
  subsystems: {
    nqn: string;
    mode: string;
    promotion: string;
    anaChgcnt: string;
    namespaces: {
      nsid: number;
      nguid: string;
      uuid: string;
      anagrpid: number;
      blockSize: number;
      nblocks: number;
      store: string;
      allocatedBytes: number;
      readCommands: string;
      writeCommands: string;
    }[];
    paths: { portid: number; grpid: number; state: string; active: boolean | null }[];
    controllers: ControllerView[];
  }[];
  discovery: { nqn: string; genctr: string; controllers: ControllerView[] };
  /** With ext.cluster: this node, its lease, the live nodes, and the active key of every group as etcd has it. */
  cluster?: Record<string, unknown>;
}

export { Status };
