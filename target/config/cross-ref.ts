/**
 * The cross-reference pass: what no single section can check. Subsystem NQNs
 * unique and not the discovery NQN; allowed_hosts named in "hosts"; ports
 * unique (portid, listen and advertised addresses) and exporting subsystems
 * that exist; initial active ports that export their subsystem; ANA groups
 * configured on every port that exports them (or added, in active-standby
 * mode); namespace ids unique across the file; cluster rules; where
 * DH-HMAC-CHAP applies.
 */
import { isIP } from 'node:net';
import { isWildcard, join, type Ctx } from './fields.ts';
import type { PortParse, RawPort } from './ports.ts';
import type { RawSubsystem } from './subsystems.ts';
import { DISCOVERY_NQN, type AnaStateName, type ClusterConfig, type HostAuthConfig } from './types.ts';

export interface Sections {
  hosts: string[];
  hostAuth: HostAuthConfig[];
  discoveryNqn: string;
  cluster: ClusterConfig | null;
  clusterGiven: boolean;
  subsystems: (RawSubsystem | undefined)[];
  /** NQNs of subsystems that were written but refused (a port naming one is not "unknown subsystem" on top). */
  writtenSubsystemNqns: Set<string>;
  ports: PortParse[];
}

/** Checks across sections; fills in each subsystem's ports and initial active ports. Returns the subsystems kept, by NQN. */
export function crossReference(ctx: Ctx, sec: Sections): Map<string, RawSubsystem> {
  const { hosts, hostAuth, discoveryNqn, cluster, ports } = sec;
  const subs = sec.subsystems;
  // --- subsystems: unique NQNs, not the discovery NQN, allowed hosts known
  const subByNqn = new Map<string, RawSubsystem>();
  for (const s of subs) {
    if (!s) continue;
    const nqnP = join(s.p, 'nqn');
    if (s.cfg.nqn === discoveryNqn || s.cfg.nqn === DISCOVERY_NQN) {
      ctx.err(nqnP, `${JSON.stringify(s.cfg.nqn)} is the discovery subsystem NQN`);
    } else if (subByNqn.has(s.cfg.nqn)) {
      ctx.err(nqnP, `duplicate subsystem ${JSON.stringify(s.cfg.nqn)} (also ${subByNqn.get(s.cfg.nqn)!.p})`);
    } else subByNqn.set(s.cfg.nqn, s);
    s.cfg.allowedHosts.forEach((h, j) => {
      if (!hosts.includes(h)) {
        ctx.err(join(join(s.p, 'allowed_hosts'), j), `host ${JSON.stringify(h)} is not listed in the top-level "hosts"`);
      }
    });
  }
  // (subsystems whose nqn failed to parse cannot be referenced, but ports naming them should not
  // produce a second, misleading "unknown subsystem" error)
  const unparsedSubNqns = new Set([...sec.writtenSubsystemNqns].filter((n) => !subByNqn.has(n)));

  // --- ports: unique portids and addresses, subsystems exist
  const portById = new Map<number, PortParse>();
  const listenSeen: RawPort[] = [];
  const advSeen = new Map<string, RawPort>();
  for (const pp of ports) {
    if (pp.portid === undefined) continue;
    if (portById.has(pp.portid)) {
      ctx.err(join(pp.p, 'portid'), `duplicate portid ${pp.portid} (also ${portById.get(pp.portid)!.p})`);
      continue;
    }
    portById.set(pp.portid, pp);
    if (pp.subsystems.length === 0) ctx.note(pp.p, 'exports no subsystem (Linux nvmet would not listen on it)');
    pp.subsystems.forEach((nqn, j) => {
      const s = subByNqn.get(nqn);
      if (s) s.cfg.ports.push(pp.portid!);
      else if (!unparsedSubNqns.has(nqn)) {
        ctx.err(join(join(pp.p, 'subsystems'), j), `unknown subsystem ${JSON.stringify(nqn)} (not in "subsystems")`);
      }
    });
    const rp = pp.full;
    if (!rp) continue;
    const c = rp.cfg;
    if (c.node !== null && !cluster && !sec.clusterGiven) {
      ctx.err(join(rp.p, 'ext.node'), 'needs the top-level ext.cluster (a port names its node only in a multi-node target)');
    } else if (c.node === null && cluster) {
      ctx.err(join(rp.p, 'ext.node'), `missing: with ext.cluster every port names the node that serves it (this node is ${JSON.stringify(cluster.node)})`);
    }
    // Ports of different nodes listen in different processes (usually on different machines).
    const clash =
      c.trsvcid === 0
        ? undefined
        : listenSeen.find(
            (o) =>
              o.cfg.node === c.node &&
              o.cfg.trsvcid === c.trsvcid &&
              o.cfg.adrfam === c.adrfam &&
              (o.cfg.traddr === c.traddr || isWildcard(o.cfg.traddr) || isWildcard(c.traddr)),
          );
    if (clash) {
      ctx.err(join(rp.p, 'addr'), `listen address ${fmtAddr(c.traddr, c.trsvcid)} conflicts with ${clash.p} (${fmtAddr(clash.cfg.traddr, clash.cfg.trsvcid)})`);
    }
    listenSeen.push(rp);
    const advKey = fmtAddr(c.advertise.traddr, c.advertise.trsvcid);
    const advClash = advSeen.get(advKey);
    if (advClash && !clash && c.advertise.trsvcid !== 0) {
      ctx.err(join(rp.p, rp.hasAdvertise ? 'ext.advertise' : 'addr'), `advertised address ${advKey} is also advertised by ${advClash.p}`);
    }
    if (!advClash && c.advertise.trsvcid !== 0) advSeen.set(advKey, rp);
  }

  // --- per subsystem: initial active ports, ANA groups
  for (const s of subByNqn.values()) {
    const sc = s.cfg;
    if (sc.ports.length === 0) ctx.note(s.p, 'not exported on any port');
    const checkPort = (pid: number, p: string): boolean => {
      if (!portById.has(pid)) {
        ctx.err(p, `unknown port ${pid} (no port with that portid)`);
        return false;
      }
      if (!sc.ports.includes(pid)) {
        ctx.err(p, `port ${pid} does not export ${sc.nqn}`);
        return false;
      }
      return true;
    };

    if (sc.mode === 'active-standby') {
      if (s.extInitialPort !== undefined) {
        if (checkPort(s.extInitialPort, join(s.p, 'ext.initial_active_port'))) sc.initialActivePort = s.extInitialPort;
      } else {
        sc.initialActivePort = sc.ports[0] ?? null;
      }
      // Namespaces: override, then per-group consistency (a group moves as a whole).
      const groupPort = new Map<number, { port: number | null; p: string }>();
      for (const n of s.namespaces) {
        let port = sc.initialActivePort;
        if (n.extInitialPort !== undefined) {
          port = checkPort(n.extInitialPort, n.extInitialPortPath) ? n.extInitialPort : null;
        }
        n.cfg.initialActivePort = port;
        const prev = groupPort.get(n.cfg.anaGrpid);
        if (prev && prev.port !== port) {
          ctx.err(
            n.extInitialPort !== undefined ? n.extInitialPortPath : join(n.p, 'ana_grpid'),
            `namespaces in ANA group ${n.cfg.anaGrpid} move together but this one starts active on port ${port} ` +
              `and ${prev.p} on port ${prev.port}; use one initial_active_port per group or separate ANA groups`,
          );
        } else if (!prev) groupPort.set(n.cfg.anaGrpid, { port, p: n.p });
      }
      // Each exporting port gets the groups the namespaces use (states are derived at runtime).
      for (const [grpid, { port: active }] of groupPort) {
        for (const pid of sc.ports) {
          const rp = portById.get(pid)!.full;
          if (rp && !rp.cfg.anaGroups.some((g) => g.grpid === grpid)) {
            const state: AnaStateName = pid === active ? 'optimized' : 'inaccessible';
            rp.cfg.anaGroups.push({ grpid, state });
            rp.cfg.anaGroups.sort((x, y) => x.grpid - y.grpid);
            ctx.note(join(rp.p, 'ana_groups'), `ANA group ${grpid} added for ${sc.nqn} (initial state ${state})`);
          }
        }
      }
    } else {
      for (const n of s.namespaces) {
        if (n.extInitialPort !== undefined) ctx.note(n.extInitialPortPath, 'has no effect in "ana" mode');
        if (n.cfg.anaGrpid === 1) continue;
        for (const pid of sc.ports) {
          const rp = portById.get(pid)!.full;
          if (rp && !rp.configuredGroups.has(n.cfg.anaGrpid)) {
            ctx.err(
              join(n.p, 'ana_grpid'),
              `ANA group ${n.cfg.anaGrpid} is not configured on port ${pid} ` +
                `(add { "grpid": ${n.cfg.anaGrpid}, "ana": { "state": ... } } to ${rp.p}.ana_groups)`,
            );
          }
        }
      }
    }
  }

  // --- namespace ids unique across the whole configuration
  const ids = { nguid: new Map<string, string>(), uuid: new Map<string, string>(), eui64: new Map<string, string>() };
  for (const s of subByNqn.values()) {
    for (const n of s.namespaces) {
      for (const key of ['nguid', 'uuid', 'eui64'] as const) {
        const val = n.cfg[key];
        const prev = ids[key].get(val);
        if (prev !== undefined) ctx.err(join(n.p, `device.${key}`), `${val} is already used by ${prev}`);
        else ids[key].set(val, n.p);
      }
      if (!n.given.nguid || !n.given.uuid || !n.given.eui64) {
        const which = (['nguid', 'uuid', 'eui64'] as const).filter((k) => !n.given[k]);
        ctx.note(n.p, `derived ${which.map((k) => `${k} ${n.cfg[k]}`).join(', ')}`);
      }
    }
  }

  // --- cluster: this node serves some port; shared namespaces need a shared store
  if (cluster) {
    const mine = [...portById.values()].filter((pp) => pp.full?.cfg.node === cluster.node);
    if (mine.length === 0) ctx.note('ext.cluster.node', `no port names node ${JSON.stringify(cluster.node)}: this node serves no port`);
    for (const s of subByNqn.values()) {
      if (s.cfg.mode !== 'active-standby') {
        ctx.note(s.p, "ana mode: not coordinated across cluster nodes (each node reports its ports' configured states)");
        continue;
      }
      if (s.cfg.persistActive) ctx.note(join(s.p, 'ext.persist_active'), 'ignored with ext.cluster: the active paths are kept in etcd');
      for (const n of s.namespaces) {
        if (n.cfg.store.kind === 'memory') {
          ctx.err(
            join(n.p, 'ext.store'),
            '"memory" is private to one process; with ext.cluster the nodes must share the namespace: use a "file" store every node opens',
          );
        }
      }
    }
  }

  // --- DH-HMAC-CHAP applies where a keyed host is named in allowed_hosts (as nvmet)
  if (hostAuth.length > 0) {
    for (const s of subByNqn.values()) {
      if (s.cfg.allowAnyHost) {
        ctx.note(
          join(s.p, 'attr.allow_any_host'),
          'is 1: hosts connecting to this subsystem are not authenticated (as nvmet, DH-HMAC-CHAP applies to hosts listed in allowed_hosts)',
        );
      }
    }
  }
  return subByNqn;
}

function fmtAddr(traddr: string, trsvcid: number): string {
  return isIP(traddr) === 6 ? `[${traddr}]:${trsvcid}` : `${traddr}:${trsvcid}`;
}
