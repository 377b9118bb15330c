/**
 * Two target nodes presenting one subsystem over one shared file store,
 * coordinated through etcd (ext.cluster, target/cluster.ts): identities and
 * ANA states agree across the nodes, 0xFE through node B fences node A's
 * executing write before it completes, a node crash (SIGKILL of a target
 * process) promotes the survivor within the lease TTL, the crashed node
 * rejoins as standby, a fence that never comes is bounded, and a node cut off
 * from etcd fences itself.
 *
 * etcd is Debian's etcd-server (installed with apt-get when missing); if it
 * cannot be installed or started, these tests fail with the reason.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { readCommand, setNamespaceActiveCommand, writeCommand } from '../../shared/sqe.ts';
import { parseConfig } from '../../target/config/index.ts';
import { createLogger } from '../../target/logger.ts';
import { Target } from '../../target/target.ts';
import { freePort, startTargetProcess, type TargetProcess } from '../../scripts/lib/processes.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { patternBlocks } from '../helpers/raw-client.ts';
import { PendingAer, Resources, anaLog, anaStateOf, connectPair, dnr, enableAec, identifyData, roundTrip, type Pair } from '../helpers/nvme-ops.ts';
import { holdNextWrite } from '../helpers/slow-store.ts';
import { waitFor } from '../helpers/wait.ts';

const SUBNQN = 'nqn.2026-11.io.nvmets:cluster0';
const TTL_MS = 2000;
const BS = 512;

let etcd: EtcdProcess;
let prefixSeq = 0;
const res = new Resources();
const procs: TargetProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
}, 600_000);

afterEach(async () => {
  await res.cleanup();
  for (const p of procs.splice(0)) await p.stop();
});

afterAll(async () => {
  await etcd?.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'nvmets-cluster-'));
  dirs.push(d);
  return d;
}

interface DocOpts {
  node: 'a' | 'b';
  prefix: string;
  file: string;
  /** TCP ports of port 1 (node a) and port 2 (node b); 0 = the OS picks (in-process nodes). */
  tcp: { a: number; b: number };
  fenceTimeoutMs?: number;
  promotion?: 'implicit' | 'explicit';
}

/** One node's configuration: both ports (portid 1 on node a, 2 on node b), its own cntlid range. */
function clusterDoc(o: DocOpts): Record<string, unknown> {
  const port = (portid: number, node: string, tcp: number) => ({
    portid,
    addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: String(tcp), treq: 'not specified' },
    param: { inline_data_size: '16384' },
    ana_groups: [{ grpid: 1, ana: { state: 'optimized' } }],
    referrals: [],
    subsystems: [SUBNQN],
    ext: { node },
  });
  return {
    hosts: [],
    ports: [port(1, 'a', o.tcp.a), port(2, 'b', o.tcp.b)],
    subsystems: [
      {
        nqn: SUBNQN,
        attr: { allow_any_host: '1', cntlid_min: o.node === 'a' ? '1' : '1001', cntlid_max: o.node === 'a' ? '1000' : '2000' },
        allowed_hosts: [],
        namespaces: [{ nsid: 1, enable: 1, ana_grpid: 1, device: { path: o.file }, ext: { store: 'file', size: '64M', block_size: BS } }],
        ext: { mode: 'active-standby', promotion: o.promotion ?? 'implicit', initial_active_port: 1 },
      },
    ],
    ext: {
      cluster: {
        node: o.node,
        etcd: etcd.endpoint,
        lease_ttl_ms: TTL_MS,
        prefix: o.prefix,
        ...(o.fenceTimeoutMs ? { fence_timeout_ms: o.fenceTimeoutMs } : {}),
      },
    },
  };
}

function freshPrefix(): string {
  return `/nvmets-test-${process.pid}-${++prefixSeq}`;
}

/** Two in-process nodes: a (port 1, initially active) then b (port 2). */
async function startPair(opts: { fenceTimeoutMs?: number; promotion?: 'implicit' | 'explicit' } = {}) {
  const dir = tmp();
  const prefix = freshPrefix();
  const file = path.join(dir, 'shared.img');
  const log = createLogger({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent', pretty: false });
  const start = async (node: 'a' | 'b') => {
    const t = await Target.create(parseConfig(clusterDoc({ node, prefix, file, tcp: { a: 0, b: 0 }, ...opts })), { log: log.child({ node }) });
    res.targets.push(t);
    await t.start();
    return t;
  };
  const a = await start('a');
  const b = await start('b');
  return { a, b, portA: a.boundPort(1), portB: b.boundPort(2), prefix, file };
}

async function readStatus(p: Pair, lba = 0): Promise<number> {
  return (await p.io.command(readCommand(1, lba, 1, BS))).cqe.status;
}

async function writeBlocks(p: Pair, lba: number, nlb: number, gen: number): Promise<{ status: number; data: Buffer }> {
  const data = patternBlocks(lba, nlb, BS, gen);
  const r = await p.io.command(writeCommand(1, lba, nlb, data.length, true), { data });
  return { status: r.cqe.status, data };
}

async function withAer(p: Pair): Promise<PendingAer> {
  await enableAec(p.admin, 1 << 11);
  const aer = new PendingAer(p.admin);
  await roundTrip(p.admin);
  return aer;
}

describe('cluster: two nodes, one subsystem, one file store, etcd', () => {
  it('both nodes present the same identities; ANA states agree: node a optimized, node b inaccessible', async () => {
    const { a, b, portA, portB } = await startPair();
    const pa = await connectPair(res, portA, SUBNQN);
    const pb = await connectPair(res, portB, SUBNQN);
    // Disjoint controller ids.
    expect(pa.cntlid).toBeGreaterThanOrEqual(1);
    expect(pa.cntlid).toBeLessThanOrEqual(1000);
    expect(pb.cntlid).toBeGreaterThanOrEqual(1001);
    expect(pb.cntlid).toBeLessThanOrEqual(2000);

    // Identify Controller is the same apart from CNTLID (bytes 79:78).
    const ca = Buffer.from(await identifyData(pa.admin, Cns.Controller));
    const cb = Buffer.from(await identifyData(pb.admin, Cns.Controller));
    expect(ca.readUInt16LE(78)).toBe(pa.cntlid);
    expect(cb.readUInt16LE(78)).toBe(pb.cntlid);
    ca.writeUInt16LE(0, 78);
    cb.writeUInt16LE(0, 78);
    expect(ca.subarray(768, 1024).toString('latin1').replace(/\0+$/, '')).toBe(SUBNQN);
    expect(ca.equals(cb)).toBe(true);
    // Namespace identity: Identify Namespace (NGUID, EUI64, size, ANA group), descriptors (UUID), 0xFC.
    for (const cns of [Cns.Namespace, Cns.NamespaceDescriptorList]) {
      const na = await identifyData(pa.admin, cns, 1);
      const nb = await identifyData(pb.admin, cns, 1);
      expect(na.equals(nb), `CNS ${cns}`).toBe(true);
    }

    const la = await anaLog(pa.admin);
    const lb = await anaLog(pb.admin);
    expect(la.groups.map((g) => [g.anagrpid, g.state, g.nsids])).toEqual([[1, AnaState.Optimized, [1]]]);
    expect(lb.groups.map((g) => [g.anagrpid, g.state, g.nsids])).toEqual([[1, AnaState.Inaccessible, [1]]]);

    // I/O: through a it works, through b it is a path error; the data is the same file.
    const w = await writeBlocks(pa, 10, 4, 1);
    expect(w.status).toBe(0);
    const rb = await pb.io.command(readCommand(1, 10, 4, 4 * BS));
    expect(rb.cqe.status).toBe(0x302);
    expect(dnr(rb)).toBe(false);

    // Each node's view: the active path is port 1 (node a) on both.
    for (const t of [a, b]) {
      const snap = t.snapshot();
      expect(snap.subsystems[0]!.paths.filter((p) => p.active).map((p) => p.portid)).toEqual([1]);
      const groups = snap.cluster!['groups'] as { port: number; node: string; state: string }[];
      expect(groups.map((g) => [g.port, g.node, g.state])).toEqual([[1, 'a', 'active']]);
      expect(snap.cluster!['nodes']).toEqual(['a', 'b']);
      expect(snap.ports.map((p) => [p.portid, p.node, p.state])).toEqual([
        [1, 'a', t === a ? 'up' : 'down'],
        [2, 'b', t === b ? 'up' : 'down'],
      ]);
    }
  });

  it('a node refuses to join with an overlapping cntlid range or a different subsystem, and records nothing then', async () => {
    const { b, prefix, file } = await startPair();
    await b.stop();
    res.targets.splice(res.targets.indexOf(b), 1);
    const log = createLogger({ level: 'silent', pretty: false });
    const tryB = async (edit: (d: Record<string, any>) => void) => {
      const d = clusterDoc({ node: 'b', prefix, file, tcp: { a: 0, b: 0 } }) as Record<string, any>;
      edit(d);
      return Target.create(parseConfig(d), { log }).then(
        (t) => {
          res.targets.push(t);
          return 'joined';
        },
        (err: Error) => err.message,
      );
    };
    const cntlidOfB = async () => {
      const key = Buffer.from(`${prefix}/${SUBNQN}/cntlid/b`).toString('base64');
      const r = (await (await fetch(`${etcd.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key }) })).json()) as {
        kvs?: { value: string }[];
      };
      return JSON.parse(Buffer.from(r.kvs![0]!.value, 'base64').toString()) as unknown;
    };
    expect(
      await tryB((d) => {
        d['subsystems'][0].attr.cntlid_min = '900';
      }),
    ).toMatch(/controller ids 900\.\.2000 overlap node a's 1\.\.1000/);
    expect(await cntlidOfB()).toEqual({ min: 1001, max: 2000 });
    expect(
      await tryB((d) => {
        d['subsystems'][0].namespaces[0].ext.size = '32M';
      }),
    ).toMatch(/differs from the one the live node\(s\) a present \(namespaces\)/);
    expect(await tryB(() => undefined)).toBe('joined');
  });

  it("0xFE through node b completes only after node a's executing write landed; node a then reports inaccessible and refuses writes", async () => {
    const { a, portA, portB } = await startPair();
    const pa = await connectPair(res, portA, SUBNQN);
    const pb = await connectPair(res, portB, SUBNQN);
    const aerA = await withAer(pa);
    const aerB = await withAer(pb);
    const nsA = a.subsystems.get(SUBNQN)!.namespaces.get(1)!;
    const hold = holdNextWrite(nsA.store);

    const LBA = 100;
    const gen1 = patternBlocks(LBA, 8, BS, 1);
    const w1 = pa.io.command(writeCommand(1, LBA, 8, gen1.length, true), { data: gen1 });
    await waitFor(() => nsA.executingOn(1) === 1, 'the node-a write to be executing');

    let feDone = false;
    let landedWhenFeDone: boolean | null = null;
    const t0 = performance.now();
    const fe = pb.admin.command(setNamespaceActiveCommand(1)).then((r) => {
      feDone = true;
      landedWhenFeDone = hold.landed;
      return r;
    });
    // Node a sees the request in etcd and demotes its port at once.
    await waitFor(async () => (await anaStateOf(pa.admin, 1)) === AnaState.Inaccessible, 'node a to report inaccessible', 5000, 10);
    expect(await aerA.dw0()).toBe(0x000c0302);
    const late = await writeBlocks(pa, LBA, 8, 2);
    expect(late.status).toBe(0x302);
    // Node b reports the transition while it waits for node a's fence.
    expect(await anaStateOf(pb.admin, 1)).toBe(AnaState.Change);
    expect(await readStatus(pb)).toBe(0x303);
    await new Promise((r) => setTimeout(r, 200));
    await roundTrip(pb.admin);
    expect(feDone).toBe(false);

    hold.open();
    expect((await w1).cqe.status).toBe(0);
    const rfe = await fe;
    const feMs = performance.now() - t0;
    expect(rfe.cqe.status).toBe(0);
    expect(landedWhenFeDone).toBe(true);
    expect(await aerB.dw0()).toBe(0x000c0302);
    console.log(`cluster: cross-node 0xFE completed ${feMs.toFixed(0)} ms after it was sent (200+ ms of it holding node a's write)`);

    expect(await anaStateOf(pb.admin, 1)).toBe(AnaState.Optimized);
    expect(await anaStateOf(pa.admin, 1)).toBe(AnaState.Inaccessible);
    expect((await writeBlocks(pa, LBA, 8, 4)).status).toBe(0x302);
    // The held write is what node b reads; then node b writes last.
    const back = await pb.io.command(readCommand(1, LBA, 8, gen1.length));
    expect(back.cqe.status).toBe(0);
    expect(back.data.equals(gen1)).toBe(true);
    const w3 = await writeBlocks(pb, LBA, 8, 3);
    expect(w3.status).toBe(0);
    expect((await pb.io.command(readCommand(1, LBA, 8, gen1.length))).data.equals(w3.data)).toBe(true);
  });

  it('a fence that never comes is bounded: 0xFE fails with a path error and the group goes back to node a', async () => {
    const FENCE_MS = 1500;
    const { a, portA, portB } = await startPair({ fenceTimeoutMs: FENCE_MS });
    const pa = await connectPair(res, portA, SUBNQN);
    const pb = await connectPair(res, portB, SUBNQN);
    const nsA = a.subsystems.get(SUBNQN)!.namespaces.get(1)!;
    const hold = holdNextWrite(nsA.store);
    const w1 = writeBlocks(pa, 200, 1, 1);
    await waitFor(() => nsA.executingOn(1) === 1, 'the node-a write to be executing');
    const t0 = performance.now();
    const fe = await pb.admin.command(setNamespaceActiveCommand(1));
    const ms = performance.now() - t0;
    expect(fe.cqe.status).toBe(0x303);
    expect(dnr(fe)).toBe(false);
    expect(ms).toBeGreaterThanOrEqual(FENCE_MS - 50);
    expect(ms).toBeLessThan(FENCE_MS + 1500);
    // Rolled back: node a active again (its write may finish there), node b standby.
    await waitFor(async () => (await anaStateOf(pa.admin, 1)) === AnaState.Optimized, 'node a optimized again', 3000, 10);
    expect(await anaStateOf(pb.admin, 1)).toBe(AnaState.Inaccessible);
    hold.open();
    expect((await w1).status).toBe(0);
    expect((await writeBlocks(pa, 201, 1, 1)).status).toBe(0);
    expect(await readStatus(pb)).toBe(0x302);
  });

  it('implicit promotion: node a lives but its port loses its last controller; node b (with a controller) takes the group, fenced', async () => {
    const { a, portA, portB } = await startPair();
    const pa = await connectPair(res, portA, SUBNQN);
    const pb = await connectPair(res, portB, SUBNQN);
    const aerB = await withAer(pb);
    const w = await writeBlocks(pa, 400, 2, 5);
    expect(w.status).toBe(0);
    pa.io.close();
    pa.admin.close();
    await waitFor(() => a.subsystems.get(SUBNQN)!.controllers.size === 0, "node a's controller gone");
    expect(await aerB.dw0()).toBe(0x000c0302);
    await waitFor(async () => (await anaStateOf(pb.admin, 1)) === AnaState.Optimized, 'node b optimized', 3000, 10);
    const r = await pb.io.command(readCommand(1, 400, 2, 2 * BS));
    expect(r.cqe.status).toBe(0);
    expect(r.data.equals(w.data)).toBe(true);
    // A new controller on node a is standby: no fail-back.
    const pa2 = await connectPair(res, portA, SUBNQN);
    expect(await anaStateOf(pa2.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(pa2)).toBe(0x302);
  });

  it("explicit promotion: a stopped node's group stays put; 0xFE through node b then takes it without waiting", async () => {
    const { a, portB } = await startPair({ promotion: 'explicit' });
    const pb = await connectPair(res, portB, SUBNQN);
    await a.stop(); // clean: drained, flushed, lease revoked
    await new Promise((r) => setTimeout(r, 300));
    expect(await anaStateOf(pb.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(pb)).toBe(0x302);
    const t0 = performance.now();
    const fe = await pb.admin.command(setNamespaceActiveCommand(1));
    expect(fe.cqe.status).toBe(0);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(await anaStateOf(pb.admin, 1)).toBe(AnaState.Optimized);
    expect(await readStatus(pb)).toBe(0);
  });

  it('node crash: SIGKILL of the active node; node b promotes its port within the lease TTL and serves every acknowledged write; the node restarts as standby; 0xFE through it moves the path back', async () => {
    const dir = tmp();
    const prefix = freshPrefix();
    const file = path.join(dir, 'shared.img');
    const tcp = { a: await freePort(), b: await freePort() };
    const docA = clusterDoc({ node: 'a', prefix, file, tcp });
    const docB = clusterDoc({ node: 'b', prefix, file, tcp });
    const nodeA = await startTargetProcess(docA, { dir, name: 'node-a' });
    procs.push(nodeA);
    const nodeB = await startTargetProcess(docB, { dir, name: 'node-b' });
    procs.push(nodeB);

    const pa = await connectPair(res, tcp.a, SUBNQN);
    const pb = await connectPair(res, tcp.b, SUBNQN);
    expect(await anaStateOf(pa.admin, 1)).toBe(AnaState.Optimized);
    expect(await anaStateOf(pb.admin, 1)).toBe(AnaState.Inaccessible);
    const aerB = await withAer(pb);

    // Acknowledged writes through node a (no FUA needed: a killed process loses nothing it wrote).
    const written: { lba: number; data: Buffer }[] = [];
    for (let i = 0; i < 32; i++) {
      const lba = i * 16;
      const data = patternBlocks(lba, 8, BS, 7);
      const r = await pa.io.command(writeCommand(1, lba, 8, data.length, false), { data });
      expect(r.cqe.status).toBe(0);
      written.push({ lba, data });
    }

    const t0 = performance.now();
    nodeA.child.kill('SIGKILL');
    await nodeA.exited;
    await waitFor(async () => (await anaStateOf(pb.admin, 1)) === AnaState.Optimized, 'node b promoted', TTL_MS + 6000, 20);
    const promotionMs = performance.now() - t0;
    console.log(`cluster: node b optimized ${promotionMs.toFixed(0)} ms after SIGKILL of node a (lease TTL ${TTL_MS} ms)`);
    expect(promotionMs).toBeLessThan(TTL_MS + 1500);
    expect(await aerB.dw0()).toBe(0x000c0302);
    for (const { lba, data } of written) {
      const r = await pb.io.command(readCommand(1, lba, 8, data.length));
      expect(r.cqe.status).toBe(0);
      expect(r.data.equals(data), `lba ${lba}`).toBe(true);
    }
    const wb = await writeBlocks(pb, 1000, 8, 9);
    expect(wb.status).toBe(0);

    // Node a restarts: it reads the active path from etcd and is standby.
    const t1 = performance.now();
    const nodeA2 = await startTargetProcess(docA, { dir, name: 'node-a' });
    procs.push(nodeA2);
    console.log(`cluster: node a restarted and ready in ${(performance.now() - t1).toFixed(0)} ms`);
    const pa2 = await connectPair(res, tcp.a, SUBNQN);
    expect(await anaStateOf(pa2.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(pa2)).toBe(0x302);
    expect(await readStatus(pb)).toBe(0);

    // 0xFE through node a: node b fences (drains, flushes, acknowledges), node a becomes active.
    const t2 = performance.now();
    const fe = await pa2.admin.command(setNamespaceActiveCommand(1));
    expect(fe.cqe.status).toBe(0);
    console.log(`cluster: 0xFE through the restarted node a completed in ${(performance.now() - t2).toFixed(0)} ms`);
    expect(await anaStateOf(pa2.admin, 1)).toBe(AnaState.Optimized);
    await waitFor(async () => (await anaStateOf(pb.admin, 1)) === AnaState.Inaccessible, 'node b inaccessible', 3000, 10);
    expect(await readStatus(pb)).toBe(0x302);
    const back = await pa2.io.command(readCommand(1, 1000, 8, wb.data.length));
    expect(back.cqe.status).toBe(0);
    expect(back.data.equals(wb.data)).toBe(true);
  }, 60_000);

  it('a node cut off from etcd fences itself before its lease can expire; when etcd is back (leases expired meanwhile) exactly one path is active', async () => {
    const { portA, portB } = await startPair();
    const pa = await connectPair(res, portA, SUBNQN);
    const pb = await connectPair(res, portB, SUBNQN);
    expect((await writeBlocks(pa, 300, 1, 1)).status).toBe(0);
    const t0 = performance.now();
    etcd.pause();
    let selfFencedMs: number;
    try {
      await waitFor(async () => (await readStatus(pa, 300)) === 0x302, 'node a self-fenced', TTL_MS + 2000, 20);
      selfFencedMs = performance.now() - t0;
      expect(await anaStateOf(pa.admin, 1)).toBe(AnaState.Inaccessible);
      expect(await readStatus(pb, 300)).toBe(0x302);
      // Stay away past the lease TTL: etcd expires both leases when it runs again.
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + TTL_MS + 1500 - performance.now())));
      expect(await readStatus(pa, 300)).toBe(0x302);
      expect(await readStatus(pb, 300)).toBe(0x302);
    } finally {
      etcd.resume();
    }
    console.log(`cluster: node a self-fenced ${selfFencedMs.toFixed(0)} ms after etcd stopped answering (lease TTL ${TTL_MS} ms)`);
    expect(selfFencedMs).toBeLessThan(TTL_MS);
    // Back: one of the two paths is active again (etcd decides whether a's lease survived the pause).
    const states = async () => [await anaStateOf(pa.admin, 1), await anaStateOf(pb.admin, 1)];
    await waitFor(async () => (await states()).filter((s) => s === AnaState.Optimized).length === 1, 'one optimized path', 4 * TTL_MS + 4000, 50);
    console.log(`cluster: one path active again ${(performance.now() - t0).toFixed(0)} ms after etcd stopped (paused ${TTL_MS + 1500} ms)`);
    const [sa] = await states();
    const active = sa === AnaState.Optimized ? pa : pb;
    const standby = active === pa ? pb : pa;
    expect(await readStatus(active, 300)).toBe(0);
    expect(await readStatus(standby, 300)).toBe(0x302);
  }, 30_000);
});
