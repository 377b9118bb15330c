/**
 * A target of several nodes: processes (usually on different machines) that
 * present the same subsystems (same NQN, same namespace identities, disjoint
 * controller ids) over one shared store, each listening on its own ports. The
 * nodes coordinate through etcd (docs/cluster.md):
 *
 *   <prefix>/nodes/<node>                   this node is alive: bound to its lease
 *   <prefix>/<subnqn>/active/<grpid>        the active port of an ANA group (JSON ActiveValue)
 *   <prefix>/<subnqn>/fence/<grpid>/<epoch> the old node's "fenced" acknowledgement
 *   <prefix>/<subnqn>/identity              what every node must present alike
 *   <prefix>/<subnqn>/cntlid/<node>         each node's controller id range (must not overlap)
 *
 * The active key is the single source of truth for the active path; every
 * change to it is a transaction on its mod revision, so exactly one change
 * wins. Activation of port P (0xFE through P, implicit promotion, control
 * API), run by the node serving P:
 *
 *  1. txn: active = { port P, state "fencing", from: the path that served I/O
 *     until now, with the incarnation (create revision of its node key) of
 *     that path's node }. Every node demotes its ports for the group at once
 *     (ANA inaccessible; P reports ANA change).
 *  2. the old node, seeing the request, has already refused new commands (the
 *     ANA check and the start of a store operation are one synchronous step),
 *     waits for its executing commands on the group's namespaces
 *     (Namespace.drain), flushes the stores (fdatasync), then writes the fence
 *     acknowledgement. The new node waits for that acknowledgement, or for
 *     the old node's incarnation to end (its lease expired: the process is
 *     dead or cut off, see selfFence below), at most fenceTimeoutMs; after
 *     that it gives the group back to the old path and fails.
 *  3. txn: active = { port P, state "active" }: P turns optimized.
 *
 * A node that cannot renew its lease fences itself before etcd can expire it
 * (self-fence: its ports turn inaccessible after leaseTtl - margin without a
 * successful keep-alive), so "the old node's lease expired" implies "the old
 * node serves no I/O for the group": either its process is gone, or it
 * stopped on its own at least `margin` before the expiry.
 */
import { sleepOn, type Clock, type TimerHandle } from '../shared/clock.ts';
import os from 'node:os';
import { AnaState } from '../shared/log-pages.ts';
import { Status } from '../shared/status.ts';
import type { ClusterConfig } from './config/index.ts';
import type { Controller } from './controller.ts';
import { EtcdClient, EtcdError, type Kv, type WatchEvent, type Watcher } from './etcd.ts';
import type { Logger } from './logger.ts';
import type { Namespace } from './namespace.ts';
import type { Port } from './port.ts';
import type { Subsystem } from './subsystem.ts';

/** The value of <prefix>/<subnqn>/active/<grpid>. */
export interface ActiveValue {
  /** The active port (a global portid) ... */
  port: number;
  /** ... and the node serving it. */
  node: string;
  /** +1 with every request to move the group. */
  epoch: number;
  /** "fencing": the move to `port` waits for `from` to be fenced; no port is optimized. */
  state: 'active' | 'fencing';
  /** fencing: incarnation of the requesting node (its node key's create revision); it drives the move. */
  incarnation?: number;
  /** fencing: the path that served I/O until the request, and the incarnation of its node then (0: none alive). */
  from?: { port: number; node: string; incarnation: number } | null;
  /** active: the active port lost its last controller; a node with one may take the group (implicit promotion). */
  orphaned?: boolean;
  reason?: string;
  at?: string;
}

/** A failed activation: 0xFE completes with a path error (DNR clear), so the host may retry or use another path. */
export class ClusterError extends Error {
  readonly kind: 'unavailable' | 'timeout' | 'superseded' | 'conflict';
  constructor(kind: ClusterError['kind'], message: string) {
    super(message);
    this.name = 'ClusterError';
    this.kind = kind;
  }
  /** NVMe status for a failed 0xFE: Internal Path Error when etcd cannot be used, ANA Transition otherwise. */
  get status(): number {
    return this.kind === 'unavailable' ? Status.InternalPathError : Status.AnaTransition;
  }
}

/** What the cluster needs of the target: its model (ports, subsystems). */
export interface ClusterHost {
  readonly portMap: ReadonlyMap<number, Port>;
  readonly subsystems: ReadonlyMap<string, Subsystem>;
  /** Lease renewal, the self-fence watchdog, fence waits and retries. */
  readonly clock: Clock;
}

/** A repeating timer on the clock (Clock has one-shot timers only); returns its stop. */
function every(clock: Clock, ms: number, fn: () => void): () => void {
  let handle: TimerHandle | null = null;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    handle = clock.setTimeout(tick, ms);
    fn();
  };
  handle = clock.setTimeout(tick, ms);
  return () => {
    stopped = true;
    clock.clearTimeout(handle);
  };
}

interface NodeEntry {
  /** Create revision of the node key: one per process incarnation. */
  incarnation: number;
  lease: string;
  info: Record<string, unknown>;
}

interface Group {
  readonly subsys: Subsystem;
  readonly grpid: number;
  readonly key: string;
  value: ActiveValue | null;
  modRev: number;
  /** Activations of this group run one after the other. */
  chain: Promise<void>;
  /** Activations of this group this node is running (> 0: a "fencing" value naming us is ours, live). */
  busy: number;
  /** Epochs this node has fenced itself for (acknowledged, or doing so). */
  readonly fencedEpochs: Set<number>;
  /** The mod revision an implicit promotion was last queued for (no second one for the same state). */
  promotedAt: number;
}

export class Cluster {
  readonly node: string;
  readonly cfg: ClusterConfig;
  readonly #etcd: EtcdClient;
  readonly #log: Logger;
  readonly #host: ClusterHost;
  #lease: string | null = null;
  #incarnation = 0;
  #ttlMs: number;
  /** this.#host.clock.now() when the last keep-alive that etcd confirmed was sent. */
  #lastRenewSent = 0;
  /** Self-fenced: no port of this node is optimized until the lease is confirmed again. */
  #suspended = false;
  #closed = false;
  readonly #nodes = new Map<string, NodeEntry>();
  readonly #groups = new Map<string, Group>();
  readonly #acks = new Set<string>();
  readonly #waiters = new Set<() => void>();
  #watcher: Watcher | null = null;
  #timers: (() => void)[] = [];
  #renewing = false;
  #rejoining = false;

  constructor(cfg: ClusterConfig, host: ClusterHost, log: Logger) {
    this.cfg = cfg;
    this.node = cfg.node;
    this.#host = host;
    this.#log = log.child({ component: 'cluster', node: cfg.node });
    this.#etcd = new EtcdClient(cfg.etcd, this.#log, host.clock);
    this.#ttlMs = cfg.leaseTtlMs;
  }

  // ---------------------------------------------------------------- keys

  get #nodesPrefix(): string {
    return `${this.cfg.prefix}/nodes/`;
  }
  #nodeKey(node: string): string {
    return `${this.#nodesPrefix}${node}`;
  }
  #activeKey(nqn: string, grpid: number): string {
    return `${this.cfg.prefix}/${nqn}/active/${grpid}`;
  }
  #ackKey(g: Group, epoch: number): string {
    return `${this.cfg.prefix}/${g.subsys.nqn}/fence/${g.grpid}/${epoch}`;
  }

  /** Subsystems whose active paths this cluster coordinates. */
  manages(subsys: Subsystem): boolean {
    return subsys.mode === 'active-standby';
  }

  isLocal(portid: number): boolean {
    return this.#host.portMap.get(portid)?.config.node === this.node;
  }

  /** The node serving a port (from the configuration). */
  nodeOf(portid: number): string | null {
    return this.#host.portMap.get(portid)?.config.node ?? null;
  }

  /** Margin between self-fencing and the earliest time etcd can expire our lease. */
  get #selfFenceMs(): number {
    return this.#ttlMs - Math.max(500, this.#ttlMs / 4);
  }

  // ---------------------------------------------------------------- join

  /**
   * Join the cluster: lease, node registration (waiting out a previous
   * incarnation of this node), identity and cntlid checks, then the active
   * paths as etcd has them (created from the configuration when absent), and
   * the watch. Before this resolves, no port listens.
   */
  async join(): Promise<void> {
    const t0 = this.#host.clock.now();
    try {
      const granted = await this.#etcd.grant(Math.ceil(this.cfg.leaseTtlMs / 1000));
      this.#lease = granted.id;
      this.#ttlMs = granted.ttlSeconds * 1000;
      this.#lastRenewSent = this.#host.clock.now();
    } catch (err) {
      throw new ClusterError('unavailable', `cluster node ${this.node}: cannot get a lease from etcd: ${(err as Error).message}`);
    }
    this.#startKeepAlive();
    await this.#register(2 * this.#ttlMs + 1000);
    for (const subsys of this.#host.subsystems.values()) {
      if (!this.manages(subsys)) continue;
      await this.#checkIdentity(subsys);
      await this.#checkCntlids(subsys);
      for (const grpid of subsys.usedGroups()) await this.#ensureGroup(subsys, grpid);
    }
    const rev = await this.#resync();
    this.#watcher = this.#etcd.watch(`${this.cfg.prefix}/`, rev + 1, { events: (ev) => this.#onEvents(ev), resync: () => this.#resync() });
    // A safety net for anything an event did not settle (a failed write, an acknowledgement not yet written).
    const safetyNet = every(this.#host.clock, this.#ttlMs, () => {
      for (const g of this.#groups.values()) {
        const v = g.value;
        if (v?.state === 'fencing' && v.from?.node === this.node && v.node !== this.node && !this.#suspended) void this.#fenceForPeer(g, v);
        this.#reconcile(g);
      }
    });
    this.#timers.push(safetyNet);
    this.#log.info(
      { lease: this.#lease, ttlMs: this.#ttlMs, incarnation: this.#incarnation, ms: +(this.#host.clock.now() - t0).toFixed(1), active: this.describe() },
      'joined the cluster',
    );
  }

  /** Register <prefix>/nodes/<node> on our lease; wait (bounded) while a previous incarnation's lease lives. */
  async #register(waitMs: number): Promise<void> {
    const key = this.#nodeKey(this.node);
    const value = JSON.stringify({
      node: this.node,
      pid: process.pid,
      host: os.hostname(),
      started: new Date(this.#host.clock.wallNow()).toISOString(),
      lease: this.#lease,
    });
    const deadline = this.#host.clock.now() + waitMs;
    let warned = false;
    for (;;) {
      const r = await this.#etcd.txn(
        [{ key, target: 'CREATE', result: 'EQUAL', value: 0 }],
        [{ put: { key, value, lease: this.#lease! } }, { range: { key } }],
        [{ range: { key } }],
      );
      const kv = r.responses[r.succeeded ? 1 : 0]?.[0];
      if (r.succeeded && kv) {
        this.#incarnation = kv.createRevision;
        this.#nodes.set(this.node, { incarnation: kv.createRevision, lease: this.#lease!, info: JSON.parse(value) as Record<string, unknown> });
        return;
      }
      if (kv && kv.lease === this.#lease) {
        this.#incarnation = kv.createRevision;
        return;
      }
      if (this.#host.clock.now() > deadline) {
        throw new ClusterError(
          'conflict',
          `cluster node ${this.node}: ${key} is held by a live lease (${kv?.lease}: ${kv?.value}); is another process running as node ${this.node}?`,
        );
      }
      if (!warned) {
        warned = true;
        this.#log.warn({ holder: kv?.value }, 'this node is still registered by a previous process (its lease has not expired yet): waiting for it');
      }
      await sleepOn(this.#host.clock, 200);
    }
  }

  /** Every node must present the same subsystem: refuse to start on a difference while another node is alive. */
  async #checkIdentity(subsys: Subsystem): Promise<void> {
    const key = `${this.cfg.prefix}/${subsys.nqn}/identity`;
    const mine = identityOf(subsys, this.#host.portMap);
    const text = JSON.stringify(mine);
    const r = await this.#etcd.txn([{ key, target: 'CREATE', result: 'EQUAL', value: 0 }], [{ put: { key, value: text } }], [{ range: { key } }]);
    if (r.succeeded) return;
    const theirs = r.responses[0]?.[0]?.value ?? '';
    if (theirs === text) return;
    let diff: string[];
    try {
      const t = JSON.parse(theirs) as Record<string, unknown>;
      diff = Object.keys(mine).filter((k) => JSON.stringify(mine[k]) !== JSON.stringify(t[k]));
    } catch {
      diff = ['(unreadable)'];
    }
    const others = (await this.#etcd.range(this.#nodesPrefix, { prefix: true })).kvs.filter((kv) => kv.key !== this.#nodeKey(this.node));
    if (others.length > 0) {
      throw new ClusterError(
        'conflict',
        `subsystem ${subsys.nqn}: this node's configuration differs from the one the live node(s) ${others.map((kv) => kv.key.slice(this.#nodesPrefix.length)).join(', ')} present (${diff.join(', ')}); every node must present the same subsystem`,
      );
    }
    this.#log.warn(
      { subnqn: subsys.nqn, differs: diff },
      'subsystem configuration changed since the cluster last ran (no other node is alive): recording the new one',
    );
    await this.#etcd.put(key, text);
  }

  /** Controller ids must be unique across the nodes: refuse overlapping cntlid ranges. */
  async #checkCntlids(subsys: Subsystem): Promise<void> {
    const prefix = `${this.cfg.prefix}/${subsys.nqn}/cntlid/`;
    const { cntlidMin: min, cntlidMax: max } = subsys.config;
    for (const kv of (await this.#etcd.range(prefix, { prefix: true })).kvs) {
      const other = kv.key.slice(prefix.length);
      if (other === this.node) continue;
      const r = JSON.parse(kv.value) as { min: number; max: number };
      if (r.min <= max && min <= r.max) {
        throw new ClusterError(
          'conflict',
          `subsystem ${subsys.nqn}: this node's controller ids ${min}..${max} overlap node ${other}'s ${r.min}..${r.max}; give every node its own attr.cntlid_min..cntlid_max`,
        );
      }
    }
    // Recorded only once accepted: a refused node leaves nothing behind.
    await this.#etcd.put(`${prefix}${this.node}`, JSON.stringify({ min, max }));
  }

  /** The group's active key; created from the configured initial active port when absent. */
  async #ensureGroup(subsys: Subsystem, grpid: number): Promise<void> {
    const key = this.#activeKey(subsys.nqn, grpid);
    const g: Group = { subsys, grpid, key, value: null, modRev: 0, chain: Promise.resolve(), busy: 0, fencedEpochs: new Set(), promotedAt: -1 };
    this.#groups.set(key, g);
    const initial = subsys.activePort.get(grpid);
    const owner = initial === undefined ? null : this.nodeOf(initial);
    if (initial === undefined || owner === null) return;
    const value: ActiveValue = {
      port: initial,
      node: owner,
      epoch: 1,
      state: 'active',
      reason: 'initial_active_port (the first node to start)',
      at: new Date(this.#host.clock.wallNow()).toISOString(),
    };
    const r = await this.#etcd.txn([{ key, target: 'CREATE', result: 'EQUAL', value: 0 }], [{ put: { key, value: JSON.stringify(value) } }]);
    if (r.succeeded) this.#log.info({ subnqn: subsys.nqn, grpid, port: initial, node: owner }, 'active path created from the configuration');
  }

  /** Re-read everything under the prefix and apply it; returns the revision read at. */
  async #resync(): Promise<number> {
    const { kvs, revision } = await this.#etcd.range(`${this.cfg.prefix}/`, { prefix: true });
    this.#nodes.clear();
    this.#acks.clear();
    const seen = new Set<string>();
    for (const kv of kvs) {
      this.#take(kv, 'PUT');
      seen.add(kv.key);
    }
    for (const g of this.#groups.values()) {
      if (!seen.has(g.key)) {
        g.value = null;
      }
    }
    for (const g of this.#groups.values()) this.#groupChanged(g);
    this.#wake();
    return revision;
  }

  // ---------------------------------------------------------------- liveness

  #startKeepAlive(): void {
    const period = Math.max(200, Math.floor(this.#ttlMs / 4));
    const renew = every(this.#host.clock, period, () => void this.#renew());
    const watchdog = every(this.#host.clock, 100, () => {
      if (!this.#closed && !this.#suspended && this.#host.clock.now() - this.#lastRenewSent > this.#selfFenceMs) {
        this.#suspend(`no keep-alive confirmed by etcd for ${Math.round(this.#host.clock.now() - this.#lastRenewSent)} ms`);
      }
    });
    this.#timers.push(renew, watchdog);
  }

  async #renew(): Promise<void> {
    if (this.#closed || this.#renewing) return;
    this.#renewing = true;
    try {
      if (this.#lease === null) {
        await this.#rejoin();
        return;
      }
      const sent = this.#host.clock.now();
      const ttl = await this.#etcd.keepAlive(this.#lease, Math.max(200, this.#ttlMs / 4));
      if (this.#closed) return;
      if (ttl > 0) {
        this.#lastRenewSent = Math.max(this.#lastRenewSent, sent);
        if (this.#suspended) await this.#resume('keep-alive confirmed again');
      } else {
        this.#suspend('our lease expired in etcd');
        this.#lease = null;
        await this.#rejoin();
      }
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'keep-alive failed');
    } finally {
      this.#renewing = false;
    }
  }

  /** After our lease expired: a new lease and registration, then resume. */
  async #rejoin(): Promise<void> {
    if (this.#rejoining || this.#closed) return;
    this.#rejoining = true;
    let granted: { id: string; ttlSeconds: number } | null = null;
    try {
      granted = await this.#etcd.grant(Math.ceil(this.cfg.leaseTtlMs / 1000));
      this.#lease = granted.id;
      this.#lastRenewSent = this.#host.clock.now();
      await this.#register(0);
      this.#log.warn({ lease: this.#lease, incarnation: this.#incarnation }, 'rejoined the cluster with a new lease');
      await this.#resume('rejoined');
    } catch (err) {
      // Not registered (or not resumed): drop this lease, the next renewal starts over.
      this.#log.warn({ err: (err as Error).message }, 'cannot rejoin the cluster yet');
      this.#lease = null;
      if (granted) void this.#etcd.revoke(granted.id, 1000).catch(() => undefined);
    } finally {
      this.#rejoining = false;
    }
  }

  /**
   * Self-fence: without a confirmed lease this node may be declared dead at
   * any moment, after which another node takes its groups without waiting
   * for it. So its ports stop being optimized now, while the lease still
   * runs (selfFenceMs after the last confirmed renewal, leaseTtl - margin).
   */
  #suspend(reason: string): void {
    if (this.#suspended || this.#closed) return;
    this.#suspended = true;
    this.#log.warn({ reason }, "self-fenced: this node's ports report inaccessible until etcd confirms its lease again");
    for (const g of this.#groups.values()) this.#applyLocal(g);
    this.#wake();
  }

  async #resume(reason: string): Promise<void> {
    if (!this.#suspended) return;
    // Re-read first: the watch may have missed events while etcd was away.
    await this.#resync();
    this.#suspended = false;
    this.#log.warn({ reason, active: this.describe() }, 'lease confirmed: resuming');
    for (const g of this.#groups.values()) this.#groupChanged(g);
  }

  // ---------------------------------------------------------------- events

  /** Take one key into the cache. */
  #take(kv: Kv, type: 'PUT' | 'DELETE'): Group | 'nodes' | null {
    if (kv.key.startsWith(this.#nodesPrefix)) {
      const node = kv.key.slice(this.#nodesPrefix.length);
      const known = this.#nodes.get(node);
      // Stale news (a resync already saw a later incarnation) is dropped.
      if (type === 'DELETE') {
        if (!known || kv.modRevision > known.incarnation) this.#nodes.delete(node);
      } else if (!known || kv.createRevision >= known.incarnation) {
        let info: Record<string, unknown> = {};
        try {
          info = JSON.parse(kv.value) as Record<string, unknown>;
        } catch {
          // keep {}
        }
        this.#nodes.set(node, { incarnation: kv.createRevision, lease: kv.lease, info });
      }
      return 'nodes';
    }
    const g = this.#groups.get(kv.key);
    if (g) {
      if (kv.modRevision < g.modRev) return null;
      g.modRev = kv.modRevision;
      g.value = type === 'DELETE' ? null : parseActive(kv.value);
      return g;
    }
    if (kv.key.includes('/fence/')) {
      if (type === 'DELETE') this.#acks.delete(kv.key);
      else this.#acks.add(kv.key);
    }
    return null;
  }

  #onEvents(events: WatchEvent[]): void {
    if (this.#closed) return;
    const changed = new Set<Group>();
    let nodesChanged = false;
    for (const e of events) {
      const what = this.#take(e.kv, e.type);
      if (what === 'nodes') {
        nodesChanged = true;
        if (e.type === 'DELETE' && e.kv.key === this.#nodeKey(this.node) && !this.#rejoining && e.kv.modRevision > this.#incarnation) {
          // Our registration is gone (lease expired or revoked): we are dead to the others.
          this.#suspend('our node key was deleted (lease expired)');
          this.#lease = null;
        }
      } else if (what) changed.add(what);
    }
    for (const g of changed) this.#groupChanged(g);
    if (nodesChanged) for (const g of this.#groups.values()) if (!changed.has(g)) this.#reconcile(g);
    this.#wake();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** A group's value changed (or must be re-applied): local ANA state, our part of a fence, promotion. */
  #groupChanged(g: Group): void {
    this.#applyLocal(g);
    const v = g.value;
    if (v?.state === 'fencing' && v.from?.node === this.node && v.node !== this.node && !this.#suspended) {
      void this.#fenceForPeer(g, v);
    }
    this.#reconcile(g);
  }

  /**
   * Make this node's ports report what the group's value says: optimized on
   * the active port if it is ours (and we are not self-fenced), ANA change on
   * our port while we move the group to it, inaccessible everywhere else.
   * Raises ANA-change events on the controllers whose state changed.
   */
  #applyLocal(g: Group): void {
    const { subsys, grpid } = g;
    const v = g.value;
    const local = subsys.config.ports.filter((p) => this.isLocal(p)).map((p) => this.#host.portMap.get(p)!);
    const before = new Map(local.map((p) => [p.portid, subsys.anaState(p, grpid)] as const));
    let active: number | undefined;
    let moving: number | undefined;
    if (v?.state === 'active') active = v.port;
    else if (v?.state === 'fencing' && v.node === this.node && g.busy > 0) moving = v.port;
    if (this.#suspended && active !== undefined && this.isLocal(active)) active = undefined;
    if (active === undefined) subsys.activePort.delete(grpid);
    else subsys.activePort.set(grpid, active);
    for (const p of local) {
      if (p.portid === moving && !this.#suspended) {
        if (!p.transitions.has(grpid)) p.transitions.set(grpid, { to: AnaState.Optimized, timer: null });
      } else p.transitions.delete(grpid);
    }
    const changed = local.filter((p) => subsys.anaState(p, grpid) !== before.get(p.portid)).map((p) => p.portid);
    if (changed.length) {
      subsys.bumpAnaChange(grpid);
      for (const c of subsys.controllers.values()) if (changed.includes(c.port.portid)) c.raiseEvent('ana-change');
    }
  }

  /**
   * We served the group and another node asks for it: no new command starts
   * here any more (applyLocal ran), so wait for those executing, flush, and
   * acknowledge.
   */
  async #fenceForPeer(g: Group, v: ActiveValue): Promise<void> {
    if (g.fencedEpochs.has(v.epoch)) return;
    g.fencedEpochs.add(v.epoch);
    const t0 = this.#host.clock.now();
    const namespaces = groupNamespaces(g);
    await Promise.all(namespaces.map((n) => n.drain(() => true)));
    const drainedMs = +(this.#host.clock.now() - t0).toFixed(3);
    await Promise.all(
      namespaces.map((n) =>
        n.store.flush().catch((err: unknown) => {
          this.#log.error(
            { err: (err as Error).message, nsid: n.nsid },
            "flush before the fence acknowledgement failed (the writes completed; durability is the store's)",
          );
        }),
      ),
    );
    const key = this.#ackKey(g, v.epoch);
    const deadline = this.#host.clock.now() + this.cfg.fenceTimeoutMs;
    for (let attempt = 0; !this.#closed && this.#host.clock.now() < deadline; attempt++) {
      if (this.#lease === null || this.#suspended) {
        // We are (about to be) dead to the others, which fences us; if we come
        // back before that, the resync after resume() acknowledges again.
        g.fencedEpochs.delete(v.epoch);
        return;
      }
      try {
        await this.#etcd.put(
          key,
          JSON.stringify({ node: this.node, epoch: v.epoch, drainedMs, at: new Date(this.#host.clock.wallNow()).toISOString() }),
          this.#lease,
        );
        this.#log.info(
          {
            subnqn: g.subsys.nqn,
            grpid: g.grpid,
            epoch: v.epoch,
            to: { port: v.port, node: v.node },
            drainedMs,
            ms: +(this.#host.clock.now() - t0).toFixed(3),
          },
          'fenced for another node: acknowledged',
        );
        return;
      } catch (err) {
        this.#log.warn({ err: (err as Error).message, attempt }, 'cannot write the fence acknowledgement yet');
        await sleepOn(this.#host.clock, Math.min(50 * 2 ** attempt, 500));
      }
    }
  }

  /**
   * Implicit promotion and recovery, decided on the cached state: a group
   * whose owner is dead (or whose active port lost its last controller) goes
   * to our first port with a live controller; a move whose requesting node
   * died is given back to the old path by that path's node.
   */
  #reconcile(g: Group): void {
    if (this.#closed || this.#suspended || this.#lease === null) return;
    const v = g.value;
    if (!v) return;
    const { subsys, grpid } = g;
    let orphan = false;
    let why = '';
    if (v.state === 'active') {
      const ownerAlive = v.node === this.node || this.#nodes.has(v.node);
      if (!ownerAlive) {
        orphan = true;
        why = `node ${v.node} serving port ${v.port} is gone (lease expired)`;
      } else if (v.orphaned) {
        if (v.node === this.node && this.#hasLiveController(subsys, v.port)) {
          void this.#setOrphaned(g, g.modRev, false);
        } else {
          orphan = true;
          why = `port ${v.port} of node ${v.node} lost its last controller`;
        }
      }
    } else {
      const requesterAlive = v.node === this.node ? g.busy > 0 : this.#nodes.get(v.node)?.incarnation === v.incarnation;
      if (!requesterAlive) {
        const from = v.from;
        if (from && from.node === this.node) {
          if (g.promotedAt !== g.modRev) {
            g.promotedAt = g.modRev;
            void this.#giveBack(g, g.modRev, v);
          }
        } else if (!from || !this.#nodes.has(from.node)) {
          orphan = true;
          why = `the move to port ${v.port} was abandoned (node ${v.node} gone) and no node serves the old path`;
        }
      }
    }
    if (orphan) subsys.orphanedGroups.add(grpid);
    else subsys.orphanedGroups.delete(grpid);
    if (!orphan || subsys.config.promotion !== 'implicit' || g.promotedAt === g.modRev) return;
    const candidate = subsys.config.ports.find((p) => this.isLocal(p) && this.#hasLiveController(subsys, p));
    if (candidate === undefined) return;
    g.promotedAt = g.modRev;
    this.activate(subsys, grpid, candidate, `implicit promotion: ${why}`, g.modRev).catch((err: unknown) => {
      this.#log.warn({ subnqn: subsys.nqn, grpid, port: candidate, err: (err as Error).message }, 'implicit promotion did not complete');
    });
  }

  #hasLiveController(subsys: Subsystem, portid: number): boolean {
    const port = this.#host.portMap.get(portid);
    return port?.state === 'up' && this.isLocal(portid) && subsys.controllersOn(portid).some((c) => !c.isGone);
  }

  // ---------------------------------------------------------------- hooks from the target

  /** A controller connected on one of our ports: it may take orphaned groups (implicit promotion). */
  controllerAdded(subsys: Subsystem, _ctrl: Controller): void {
    for (const g of this.#groupsOf(subsys)) this.#reconcile(g);
  }

  /**
   * Our port lost its last live controller: move its groups to another port
   * of ours that has one, or mark them orphaned so that another node with a
   * controller takes them.
   */
  portLostControllers(subsys: Subsystem, portid: number, reason: string): void {
    if (this.#closed || subsys.config.promotion !== 'implicit') return;
    for (const g of this.#groupsOf(subsys)) {
      const v = g.value;
      if (v?.state !== 'active' || v.port !== portid || v.node !== this.node) continue;
      const candidate = subsys.config.ports.find((p) => p !== portid && this.isLocal(p) && this.#hasLiveController(subsys, p));
      if (candidate !== undefined) {
        this.activate(subsys, g.grpid, candidate, `implicit promotion: port ${portid} lost its last controller (${reason})`, g.modRev).catch((err: unknown) => {
          this.#log.warn({ err: (err as Error).message }, 'implicit promotion did not complete');
        });
      } else {
        this.#log.warn(
          { subnqn: subsys.nqn, grpid: g.grpid, port: portid, reason },
          'active port lost its last controller: marked orphaned, a node with a controller takes the group',
        );
        void this.#setOrphaned(g, g.modRev, true);
      }
    }
  }

  #groupsOf(subsys: Subsystem): Group[] {
    return [...this.#groups.values()].filter((g) => g.subsys === subsys);
  }

  #group(subsys: Subsystem, grpid: number): Group {
    const g = this.#groups.get(this.#activeKey(subsys.nqn, grpid));
    if (!g) throw new ClusterError('conflict', `group ${grpid} of ${subsys.nqn} is not known to the cluster`);
    return g;
  }

  // ---------------------------------------------------------------- writes

  async #setOrphaned(g: Group, rev: number, orphaned: boolean): Promise<void> {
    const v = g.value;
    if (!v || v.state !== 'active' || g.modRev !== rev || (v.orphaned === true) === orphaned) return;
    const next: ActiveValue = { ...v, orphaned, at: new Date(this.#host.clock.wallNow()).toISOString() };
    if (!orphaned) delete next.orphaned;
    try {
      await this.#casPut(g, rev, next);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cannot update the orphaned flag');
    }
  }

  /** The requester of a move died: we served the old path, take it back (no one else served I/O meanwhile). */
  async #giveBack(g: Group, rev: number, v: ActiveValue): Promise<void> {
    const from = v.from!;
    const next: ActiveValue = {
      port: from.port,
      node: this.node,
      epoch: v.epoch + 1,
      state: 'active',
      reason: `the move to port ${v.port} was abandoned (node ${v.node} gone): back to port ${from.port}`,
      at: new Date(this.#host.clock.wallNow()).toISOString(),
    };
    try {
      if (await this.#casPut(g, rev, next)) this.#log.warn({ subnqn: g.subsys.nqn, grpid: g.grpid, port: from.port }, next.reason);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cannot take the group back');
    }
  }

  /** Put the group's value if its mod revision is still `rev`; updates the cache and local state. */
  async #casPut(g: Group, rev: number, next: ActiveValue, extra: { del?: string } = {}): Promise<boolean> {
    const r = await this.#etcd.txn(
      [{ key: g.key, target: 'MOD', result: 'EQUAL', value: rev }],
      [{ put: { key: g.key, value: JSON.stringify(next) } }, ...(extra.del ? [{ del: { key: extra.del } }] : [])],
      [{ range: { key: g.key } }],
    );
    if (r.succeeded) {
      if (r.revision >= g.modRev) {
        g.value = next;
        g.modRev = r.revision;
      }
    } else {
      const kv = r.responses[0]?.[0];
      if (kv) this.#take(kv, 'PUT');
    }
    this.#groupChanged(g);
    return r.succeeded;
  }

  // ---------------------------------------------------------------- activation

  /**
   * Make a port of ours the active one for a group, fencing the node that
   * served it (see the file comment). With `expectRev`, only if the group's
   * key is still at that mod revision (implicit promotion decided on it);
   * otherwise nothing happens. Rejects with ClusterError.
   */
  activate(subsys: Subsystem, grpid: number, portid: number, reason: string, expectRev?: number): Promise<void> {
    const g = this.#group(subsys, grpid);
    const run = g.chain.then(() => this.#doActivate(g, portid, reason, expectRev));
    g.chain = run.catch(() => undefined);
    return run;
  }

  async #doActivate(g: Group, portid: number, reason: string, expectRev: number | undefined): Promise<void> {
    if (this.#closed) throw new ClusterError('unavailable', 'the target is stopping');
    if (!this.isLocal(portid)) throw new ClusterError('conflict', `port ${portid} is served by node ${this.nodeOf(portid)}, not by this node (${this.node})`);
    if (this.#suspended || this.#lease === null)
      throw new ClusterError('unavailable', `node ${this.node} has no confirmed lease in etcd (self-fenced): it cannot take a path`);
    g.busy++;
    const t0 = this.#host.clock.now();
    try {
      // 1. the request
      let written: { value: ActiveValue; rev: number } | null = null;
      for (let attempt = 0; attempt < 5 && !written; attempt++) {
        let cur: Kv | undefined;
        try {
          cur = (await this.#etcd.range(g.key)).kvs[0];
        } catch (err) {
          throw new ClusterError('unavailable', `cannot read the active path from etcd: ${(err as Error).message}`);
        }
        const rev = cur?.modRevision ?? 0;
        if (cur) this.#take(cur, 'PUT');
        if (expectRev !== undefined && rev !== expectRev) return; // the state changed: reconcile decides again
        const v = cur ? parseActive(cur.value) : null;
        if (v && v.port === portid && v.state === 'active') {
          // Already active here: still make sure nothing from another port of ours is executing.
          await Promise.all(groupNamespaces(g).map((n) => n.drain((p) => p !== portid)));
          if (v.orphaned) await this.#setOrphaned(g, rev, false);
          this.#applyLocal(g);
          return;
        }
        const from = v ? (v.state === 'active' ? { port: v.port, node: v.node } : (v.from ?? null)) : null;
        const fromKey = from ? this.#nodeKey(from.node) : null;
        const fromInc = from ? (from.node === this.node ? this.#incarnation : (this.#nodes.get(from.node)?.incarnation ?? 0)) : 0;
        const next: ActiveValue = {
          port: portid,
          node: this.node,
          epoch: (v?.epoch ?? 0) + 1,
          state: 'fencing',
          incarnation: this.#incarnation,
          from: from ? { ...from, incarnation: fromInc } : null,
          reason,
          at: new Date(this.#host.clock.wallNow()).toISOString(),
        };
        let r;
        try {
          // The old node's incarnation is checked in the same transaction: a node
          // that (re)registered since we looked is waited for, never skipped.
          r = await this.#etcd.txn(
            [
              { key: g.key, target: 'MOD', result: 'EQUAL', value: rev },
              ...(fromKey && from!.node !== this.node ? [{ key: fromKey, target: 'CREATE' as const, result: 'EQUAL' as const, value: fromInc }] : []),
            ],
            [{ put: { key: g.key, value: JSON.stringify(next) } }],
            [{ range: { key: g.key } }, ...(fromKey ? [{ range: { key: fromKey } }] : [])],
          );
        } catch (err) {
          throw new ClusterError('unavailable', `cannot write the activation request to etcd: ${(err as Error).message}`);
        }
        if (r.succeeded) {
          written = { value: next, rev: r.revision };
          break;
        }
        // Someone else moved the group, or the old node re-registered: look again.
        const nodeKv = r.responses[1]?.[0];
        if (fromKey && from!.node !== this.node) {
          if (nodeKv) this.#take(nodeKv, 'PUT');
          else this.#nodes.delete(from!.node);
        }
        if (expectRev !== undefined) return;
      }
      if (!written) throw new ClusterError('superseded', `the active path of group ${g.grpid} kept changing: try again`);
      if (written.rev >= g.modRev) {
        g.value = written.value;
        g.modRev = written.rev;
      }
      this.#groupChanged(g); // every port of ours stops being optimized; ours reports ANA change

      // 2. the fence
      const from = written.value.from;
      const fenceT0 = this.#host.clock.now();
      try {
        await Promise.all([
          // commands started through any other port of ours (a local move, or a former standby of ours)
          ...groupNamespaces(g).map((n) => n.drain((p) => p !== portid)),
          from && from.node !== this.node ? this.#waitFenced(g, written.value.epoch, from, this.cfg.fenceTimeoutMs) : Promise.resolve('local' as const),
        ]);
      } catch (err) {
        // Neither acknowledged nor dead in time: give the group back to the old path.
        if (from) {
          const back: ActiveValue = {
            port: from.port,
            node: from.node,
            epoch: written.value.epoch + 1,
            state: 'active',
            reason: `rollback: ${(err as Error).message}`,
            at: new Date(this.#host.clock.wallNow()).toISOString(),
          };
          await this.#casPut(g, written.rev, back).catch((e: unknown) => this.#log.error({ err: (e as Error).message }, 'cannot roll the activation back'));
        }
        throw err;
      }
      const fenceMs = +(this.#host.clock.now() - fenceT0).toFixed(3);

      // 3. active
      const final: ActiveValue = {
        port: portid,
        node: this.node,
        epoch: written.value.epoch,
        state: 'active',
        reason,
        at: new Date(this.#host.clock.wallNow()).toISOString(),
      };
      let ok: boolean;
      try {
        ok = await this.#casPut(g, written.rev, final, { del: this.#ackKey(g, written.value.epoch) });
      } catch (err) {
        throw new ClusterError('unavailable', `cannot complete the activation in etcd: ${(err as Error).message}`);
      }
      if (!ok) throw new ClusterError('superseded', `group ${g.grpid} was moved elsewhere while this activation fenced the old path`);
      this.#log.info(
        {
          subnqn: g.subsys.nqn,
          grpid: g.grpid,
          from: from ?? null,
          to: { port: portid, node: this.node },
          epoch: final.epoch,
          fenceMs,
          ms: +(this.#host.clock.now() - t0).toFixed(3),
          reason,
        },
        'active path moved',
      );
    } finally {
      g.busy--;
      this.#applyLocal(g);
    }
  }

  /**
   * Resolves when the old path's node has acknowledged the fence for this
   * epoch, or that node's incarnation has ended; rejects after timeoutMs.
   *
   * Why an ended incarnation (lease expired, or node key re-created by a new
   * process) is as good as an acknowledgement:
   *  - the process is dead. Its writes are pwrite() calls on the shared file,
   *    made by libuv threads of that process. A killed process's in-flight
   *    pwrite either completed into the page cache before the process finished
   *    dying (the kernel completes or aborts a system call before the thread
   *    is torn down) or never happens: nothing is queued anywhere to be issued
   *    on its behalf later. Its lease can only expire after it stopped
   *    renewing, i.e. after it died, so those writes precede this point (and
   *    reads through the shared page cache see them). The one exception is a
   *    pwrite the kernel itself keeps blocked (a stuck file system) for longer
   *    than the lease: no lease can cover that (no storage-level fencing);
   *  - or the process lives but lost etcd: it fenced itself (ports
   *    inaccessible, so no new command starts) at least max(500 ms, TTL/4)
   *    before etcd could expire its lease (see suspend()).
   */
  #waitFenced(g: Group, epoch: number, from: { port: number; node: string; incarnation: number }, timeoutMs: number): Promise<'ack' | 'gone'> {
    const ackKey = this.#ackKey(g, epoch);
    const nodeKey = this.#nodeKey(from.node);
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, how?: 'ack' | 'gone') => {
        if (settled) return;
        settled = true;
        this.#waiters.delete(check);
        this.#host.clock.clearTimeout(timer);
        stopPoll();
        if (err) reject(err);
        else resolve(how!);
      };
      const check = () => {
        if (this.#acks.has(ackKey)) return finish(null, 'ack');
        if (from.incarnation === 0 || (this.#nodes.get(from.node)?.incarnation ?? 0) !== from.incarnation) return finish(null, 'gone');
        if (this.#closed) return finish(new ClusterError('unavailable', 'the target is stopping'));
        if (this.#suspended) return finish(new ClusterError('unavailable', `node ${this.node} lost its lease while fencing`));
      };
      const timer = this.#host.clock.setTimeout(
        () => finish(new ClusterError('timeout', `node ${from.node} neither acknowledged the fence of port ${from.port} nor expired within ${timeoutMs} ms`)),
        timeoutMs,
      );
      // The watch delivers both; a slow poll covers a watch that is reconnecting.
      const stopPoll = every(this.#host.clock, Math.max(100, this.#ttlMs / 4), () => {
        void Promise.all([this.#etcd.range(ackKey), this.#etcd.range(nodeKey)]).then(
          ([a, n]) => {
            if (a.kvs[0]) this.#acks.add(ackKey);
            const kv = n.kvs[0];
            if (kv) this.#take(kv, 'PUT');
            else if ((this.#nodes.get(from.node)?.incarnation ?? 0) !== 0 && n.revision > 0) this.#nodes.delete(from.node);
            check();
          },
          () => undefined,
        );
      });
      this.#waiters.add(check);
      check();
    });
  }

  // ---------------------------------------------------------------- state and shutdown

  describe(): Record<string, unknown> {
    return {
      node: this.node,
      lease: this.#lease,
      incarnation: this.#incarnation,
      suspended: this.#suspended,
      nodes: [...this.#nodes.keys()].sort(),
      groups: [...this.#groups.values()].map((g) => ({ subnqn: g.subsys.nqn, grpid: g.grpid, modRev: g.modRev, ...(g.value ?? {}) })),
    };
  }

  /** Leave: stop renewing, stop watching, revoke the lease (the other nodes see this node gone at once). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of this.#timers) stop();
    this.#timers = [];
    this.#watcher?.close();
    this.#wake();
    if (this.#lease) {
      try {
        await this.#etcd.revoke(this.#lease, 1000);
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'cannot revoke the lease: the other nodes see this node gone when it expires');
      }
    }
    await this.#watcher?.done;
    this.#log.info('left the cluster');
  }
}

function parseActive(text: string): ActiveValue | null {
  try {
    const v = JSON.parse(text) as ActiveValue;
    if (typeof v.port !== 'number' || typeof v.node !== 'string' || (v.state !== 'active' && v.state !== 'fencing')) return null;
    return v;
  } catch {
    return null;
  }
}

function groupNamespaces(g: Group): Namespace[] {
  return [...g.subsys.namespaces.values()].filter((n) => n.anagrpid === g.grpid);
}

/** What every node of a cluster must present alike for a subsystem. */
export function identityOf(subsys: Subsystem, ports: ReadonlyMap<number, Port>): Record<string, unknown> {
  const c = subsys.config;
  return {
    nqn: c.nqn,
    serial: c.serial,
    model: c.model,
    firmware: c.firmware,
    version: c.version,
    ieeeOui: c.ieeeOui,
    mode: c.mode,
    promotion: c.promotion,
    ports: c.ports.map((portid) => ({ portid, node: ports.get(portid)?.config.node ?? null })),
    namespaces: [...subsys.namespaces.values()]
      .sort((a, b) => a.nsid - b.nsid)
      .map((n) => ({
        nsid: n.nsid,
        nguid: n.identity.nguid.toString('hex'),
        uuid: n.identity.uuid.toString('hex'),
        eui64: n.identity.eui64.toString('hex'),
        anagrpid: n.anagrpid,
        blockSize: n.blockSize,
        nblocks: n.nblocks,
      })),
  };
}

export { EtcdError };
