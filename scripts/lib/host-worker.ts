/**
 * A host process for end-to-end runs: connects to every given port, runs a
 * verified workload through the multipath head, and prints JSON lines
 * (connected, progress, head events, result) for the orchestrator.
 */
import { readdirSync } from 'node:fs';
import { HostSession } from '../../host/session.ts';
import { runWorkload, type Pattern } from '../../host/workload.ts';
import { anaStateName } from '../../shared/log-pages.ts';
import type { HostWorkerOptions } from './processes.ts';
import type { IoPolicy } from '../../host/multipath/index.ts';

const o = JSON.parse(process.argv[2] ?? '{}') as HostWorkerOptions;
const openFds = (): number => {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
};
const t0 = performance.now();
const at = () => Math.round(performance.now() - t0);
const out = (e: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ atMs: at(), ...e })}\n`);

async function main(): Promise<void> {
  const session = new HostSession({ head: { ...(o.policy ? { policy: o.policy as IoPolicy } : {}), ...(o.noPathTimeoutMs ? { noPathTimeoutMs: o.noPathTimeoutMs } : {}) } });
  for (const p of o.ports) {
    await session.connect({
      traddr: p.traddr,
      trsvcid: p.trsvcid,
      subnqn: o.subnqn,
      katoMs: o.katoMs ?? 1000,
      reconnectDelayMs: o.reconnectDelayMs ?? 250,
      ctrlLossTmoMs: o.ctrlLossTmoMs ?? 60_000,
      nrIoQueues: 2,
      queueSize: 64,
    });
  }
  const head = session.head({ subnqn: o.subnqn });
  const paths = () => head.paths.map((p) => ({ name: p.name, address: p.address, state: p.controllerState, ana: anaStateName(p.anaState) }));
  out({ type: 'connected', paths: paths() });
  for (const ev of ['path-up', 'path-down', 'failover-start', 'failover-end', 'no-path'] as const) {
    (head as unknown as NodeJS.EventEmitter).on(ev, (d: Record<string, unknown>) => {
      const detail: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(d ?? {})) detail[k] = v && typeof v === 'object' && 'name' in v ? (v as { name: string }).name : v;
      out({ type: 'head', event: ev, detail });
    });
  }
  // Sampled on our own clock so that a stall shows as samples with no I/O.
  const live = { ios: 0, bytes: 0, errors: 0, mismatches: 0 };
  const every = o.progressMs ?? 250;
  let prev = { ios: 0, bytes: 0, at: performance.now() };
  const sampler = setInterval(() => {
    const now = performance.now();
    const secs = (now - prev.at) / 1000;
    out({ type: 'progress', rss: process.memoryUsage().rss, fds: openFds(), ios: live.ios, iops: Math.round((live.ios - prev.ios) / secs), mbps: +((live.bytes - prev.bytes) / secs / 1e6).toFixed(2), errors: live.errors, mismatches: live.mismatches, active: head.activePath?.name ?? null, paths: paths() });
    prev = { ios: live.ios, bytes: live.bytes, at: now };
  }, every);
  const result = await runWorkload(head, {
    rw: (o.rw ?? 'randrw') as Pattern,
    bs: o.bs ?? 4096,
    qd: o.qd ?? 8,
    runtimeMs: o.runtimeMs,
    verify: true,
    spanBlocks: o.spanBlocks ?? 16384,
    seed: 5,
    stallThresholdMs: 50,
    live,
  });
  clearInterval(sampler);
  const c = head.state().counters as unknown as Record<string, number>;
  out({ type: 'result', result, counters: c });
  await session.close();
}

main().catch((err: unknown) => {
  out({ type: 'error', message: (err as Error).message });
  process.exitCode = 1;
});
