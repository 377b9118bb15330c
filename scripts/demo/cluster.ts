/**
 * The two-node demo (docs/cluster.md): a throw-away etcd on 127.0.0.1, two
 * target processes (nodes a and b) presenting one subsystem over one file
 * store, and our multipath host running a verified workload across both.
 * Node a (active) is killed with SIGKILL; node b takes the path when a's
 * lease expires; node a restarts as standby; 0xFE through node a moves the
 * path back. Prints what happens and the final verification.
 *
 *   npx tsx scripts/demo/cluster.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setNamespaceActiveCommand } from '../../shared/sqe.ts';
import type { TargetSnapshot } from '../../target/target.ts';
import { connectController } from '../../host/index.ts';
import { startEtcd } from '../lib/etcd.ts';
import { freePort, startHostWorker, startTargetProcess, type TargetProcess } from '../lib/processes.ts';
import { waitFor } from '../lib/wait.ts';

const NQN = 'nqn.2026-11.io.nvmets:array0';
const TTL_MS = 2000;
const t0 = performance.now();
const say = (s: string) => process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(2).padStart(6)} s] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function nodeDoc(node: 'a' | 'b', etcd: string, file: string, tcp: { a: number; b: number }): Record<string, unknown> {
  const port = (portid: number, n: string, svc: number) => ({
    portid,
    addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: String(svc), treq: 'not specified' },
    subsystems: [NQN],
    ext: { node: n },
  });
  return {
    hosts: [],
    ports: [port(1, 'a', tcp.a), port(2, 'b', tcp.b)],
    subsystems: [
      {
        nqn: NQN,
        attr: { allow_any_host: '1', cntlid_min: node === 'a' ? '1' : '1001', cntlid_max: node === 'a' ? '1000' : '2000' },
        allowed_hosts: [],
        namespaces: [{ nsid: 1, enable: 1, ana_grpid: 1, device: { path: file }, ext: { store: 'file', size: '256M' } }],
        ext: { mode: 'active-standby', promotion: 'implicit', initial_active_port: 1 },
      },
    ],
    ext: { cluster: { node, etcd, lease_ttl_ms: TTL_MS } },
  };
}

async function activeOn(t: TargetProcess): Promise<number | null> {
  const s = await t.ctl<TargetSnapshot>('show');
  return s.subsystems[0]!.paths.find((p) => p.active)?.portid ?? null;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-cluster-demo-'));
  const etcd = await startEtcd();
  say(`etcd ${etcd.endpoint} (pid ${etcd.pid})`);
  const procs: TargetProcess[] = [];
  let worker: ReturnType<typeof startHostWorker> | null = null;
  try {
    const file = path.join(dir, 'array0.img');
    const tcp = { a: await freePort(), b: await freePort() };
    const docA = nodeDoc('a', etcd.endpoint, file, tcp);
    const docB = nodeDoc('b', etcd.endpoint, file, tcp);
    const a = await startTargetProcess(docA, { dir, name: 'node-a' });
    procs.push(a);
    const b = await startTargetProcess(docB, { dir, name: 'node-b' });
    procs.push(b);
    say(`node a: port 1 on 127.0.0.1:${tcp.a}; node b: port 2 on 127.0.0.1:${tcp.b}; shared store ${file}`);
    say(`active path: port ${await activeOn(a)} (as node a sees it), port ${await activeOn(b)} (as node b sees it)`);

    worker = startHostWorker({
      ports: [
        { traddr: '127.0.0.1', trsvcid: tcp.a },
        { traddr: '127.0.0.1', trsvcid: tcp.b },
      ],
      subnqn: NQN,
      runtimeMs: 14_000,
      rw: 'randrw',
      bs: 4096,
      qd: 8,
      progressMs: 1000,
      katoMs: 1000,
    });
    worker.on((e) => {
      if (e.type === 'progress') say(`host: ${e.iops} IOPS, errors ${e.errors}, mismatches ${e.mismatches}, active ${e.active ?? '-'}`);
      if (e.type === 'head') say(`host: ${e.event} ${JSON.stringify(e.detail)}`);
    });
    await sleep(4000);

    say('SIGKILL node a (the active node)');
    const killed = performance.now();
    a.child.kill('SIGKILL');
    await a.exited;
    await waitFor(async () => (await activeOn(b)) === 2, 'node b active on port 2', 10_000, 20);
    say(`node b active on port 2 ${(performance.now() - killed).toFixed(0)} ms after the kill (lease TTL ${TTL_MS} ms)`);
    await sleep(3000);

    say('node a restarts');
    const a2 = await startTargetProcess(docA, { dir, name: 'node-a' });
    procs.push(a2);
    say(`node a back: active path is port ${await activeOn(a2)} (node a is standby)`);
    await sleep(2000);

    say('0xFE through node a');
    const ctrl = await connectController({ traddr: '127.0.0.1', trsvcid: tcp.a, subnqn: NQN });
    const fe0 = performance.now();
    const fe = await ctrl.submitAdmin(setNamespaceActiveCommand(1), { timeoutMs: 30_000 });
    const feStatus = fe.kind === 'completed' ? `status 0x${fe.status.toString(16)}` : `path error (${fe.reason})`;
    say(`0xFE ${feStatus} in ${(performance.now() - fe0).toFixed(0)} ms: active path port ${await activeOn(a2)}`);
    await ctrl.disconnect();

    const done = await worker.done;
    const r = done.result;
    say(
      `workload: ${r.ios} I/Os, ${r.errors.length} errors, ${r.mismatches.length} mismatches, ${r.verifiedBlocks} blocks verified, longest stall ${r.maxStallMs} ms`,
    );
    if (r.mismatches.length > 0 || r.errors.length > 0) process.exitCode = 1;
  } finally {
    worker?.kill();
    for (const p of procs) await p.stop();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`cluster demo: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
