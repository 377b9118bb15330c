/**
 * A host process for end-to-end runs: connects to every given port, runs a
 * verified workload through the multipath head, and prints JSON lines
 * (connected, progress, head events, result) for the orchestrator.
 */
import { readdirSync } from 'node:fs';
import { runWorkload, type Pattern } from '../../host/workload.ts';
import type { HostWorkerOptions } from './processes.ts';
import { connectWorkerHost, emit } from './worker-host.ts';

const o = JSON.parse(process.argv[2] ?? '{}') as HostWorkerOptions;
const openFds = (): number => {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
};

async function main(): Promise<void> {
  const { session, head, sampleProgress } = await connectWorkerHost(o);
  const live = { ios: 0, bytes: 0, errors: 0, mismatches: 0 };
  const stopSampling = sampleProgress(live, () => ({ rss: process.memoryUsage().rss, fds: openFds() }));
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
  stopSampling();
  const c = head.state().counters as unknown as Record<string, number>;
  emit({ type: 'result', result, counters: c });
  await session.close();
}

main().catch((err: unknown) => {
  emit({ type: 'error', message: (err as Error).message });
  process.exitCode = 1;
});
