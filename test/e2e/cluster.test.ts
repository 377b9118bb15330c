/**
 * Node crash with two nodes (docs/cluster.md): two target processes, nodes a
 * and b, present one active-standby subsystem over one shared file store,
 * coordinated through a throw-away etcd. The host worker connects to port 1
 * (node a, active) and port 2 (node b). Node a is SIGKILLed under the
 * verified workload: once its lease expires node b promotes port 2 (implicit
 * promotion) and I/O goes on there with no error, nothing acknowledged lost.
 * Node a restarts, rejoins as standby, and a 0xFE from the host through
 * node a moves the path back, fenced.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerPid } from '../../scripts/e2e/registry.ts';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { Rig, activePort, assertClean, configDoc, flowing, freePorts, report, tempDir, withFileStore, type ConfigDoc } from './harness.ts';

let rig: Rig;
let etcd: EtcdProcess | null = null;
let etcdError: Error | null = null;
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
});
beforeAll(async () => {
  try {
    etcd = await startEtcd();
    registerPid(etcd.pid, 'etcd');
  } catch (err) {
    etcdError = err as Error;
  }
}, 300_000);
afterAll(async () => {
  await etcd?.stop();
});

const TTL_MS = 2000;

/** Node `node`'s configuration: both ports (port 1 on node a, port 2 on node b), the shared file, disjoint cntlids. */
function nodeDoc(node: 'a' | 'b', ports: number[], image: string, endpoint: string, prefix: string): ConfigDoc {
  const doc = withFileStore(configDoc(ports), image);
  doc.ports[0].ext = { node: 'a' };
  doc.ports[1].ext = { node: 'b' };
  const sub = doc.subsystems[0];
  Object.assign(sub.attr, node === 'a' ? { cntlid_min: '1', cntlid_max: '1000' } : { cntlid_min: '1001', cntlid_max: '2000' });
  sub.ext = { mode: 'active-standby', promotion: 'implicit', initial_active_port: 1 };
  doc.ext = { cluster: { node, etcd: endpoint, lease_ttl_ms: TTL_MS, prefix } };
  return doc;
}

describe('two-node cluster', () => {
  it('node crash with two nodes: the survivor takes over within the lease TTL; the node rejoins and 0xFE moves back', async () => {
    if (!etcd) throw new Error(`the two-node scenario needs etcd: ${etcdError?.message ?? 'not started'}`);
    rig = new Rig();
    const dir = tempDir('cluster');
    const ports = await freePorts(2);
    const image = path.join(dir, 'array0.img');
    const prefix = `/nvmets-e2e-${process.pid}-${Date.now()}`;
    const docA = nodeDoc('a', ports, image, etcd.endpoint, prefix);
    const docB = nodeDoc('b', ports, image, etcd.endpoint, prefix);
    const a = await rig.target(docA, { dir: tempDir('node-a'), name: 'node-a' });
    const b = await rig.target(docB, { dir: tempDir('node-b'), name: 'node-b' });
    expect(await activePort(a)).toBe(1);
    expect(await activePort(b)).toBe(1);
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, ctrlLossTmoMs: 30_000 });
    const conn = await w.connected;
    expect(conn.paths.map((p) => p.ana)).toEqual(['optimized', 'inaccessible']);
    const nameA = conn.paths[0]!.name;
    await flowing(w, 2000);

    // Node a, serving the active port, dies like a machine losing power.
    a.child.kill('SIGKILL');
    expect(await a.exited).toMatchObject({ signal: 'SIGKILL' });
    const killedAt = Date.now();
    await w.waitFor((e) => e.type === 'head' && e.event === 'failover-end', 15_000, 'failover-end after node a died');
    const takeoverMs = Date.now() - killedAt;
    await flowing(w, 500);
    expect(await activePort(b), 'node b promoted its port').toBe(2);

    // Node a comes back: standby (node b holds the group), the host reconnects to it.
    const mark = w.mark();
    const a2 = await rig.target(docA, { dir: tempDir('node-a2'), name: 'node-a' });
    expect(await activePort(a2)).toBe(2);
    await w.waitFor((e) => e.type === 'progress' && e.paths.some((p) => p.name === nameA && p.state === 'live'), 15_000, `${nameA} live again`, mark);
    await flowing(w, 500);
    // 0xFE through node a moves the path back (node b fenced first).
    const res = await w.request<{ kind: string; status?: number }>('activate', { index: 0 });
    expect(res).toMatchObject({ kind: 'completed', status: 0 });
    expect(await activePort(a2)).toBe(1);
    expect(await activePort(b)).toBe(1);
    await flowing(w, 500);
    await w.request('stop');
    const r = await w.done;
    report(
      'node crash, two nodes (etcd)',
      rig,
      w,
      r,
      `node b took over ${takeoverMs} ms after the kill (lease TTL ${TTL_MS} ms); node a rejoined, 0xFE moved back`,
    );
    assertClean(r);
    expect(r.counters.failovers).toBeGreaterThan(0);
    // The survivor waited for the lease: the application saw a stall, no error.
    expect(r.result.maxStallMs).toBeGreaterThanOrEqual(1000);
  });
});
