/**
 * What every host worker process shares (scripts/lib/host-worker.ts for
 * soak and demos, scripts/e2e/host-worker.ts for the end-to-end scenarios):
 * one controller per given port, the multipath head, JSON lines on stdout
 * stamped with the time since start, the head's events forwarded, and the
 * progress sampler.
 */
import { HostSession } from '../../host/session.ts';
import type { Controller } from '../../host/controller.ts';
import type { IoPolicy, MultipathHead } from '../../host/multipath/index.ts';
import { anaStateName } from '../../shared/log-pages.ts';
import type { HostWorkerOptions } from './processes.ts';

const t0 = performance.now();

/** Milliseconds since this worker started. */
export const sinceStart = (): number => Math.round(performance.now() - t0);

/** One JSON line on stdout, stamped with atMs. */
export function emit(e: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ atMs: sinceStart(), ...e })}\n`);
}

/** The counters a workload updates as it goes (runWorkload's `live`). */
export interface LiveCounters {
  ios: number;
  bytes: number;
  errors: number;
  mismatches: number;
}

export interface WorkerHost {
  readonly session: HostSession;
  readonly head: MultipathHead;
  /** Controllers in the order of o.ports. */
  readonly controllers: Controller[];
  /** The head's paths as the events show them. */
  paths(): { name: string; address: string; state: string; ana: string }[];
  /**
   * Prints a progress line every o.progressMs (default 250) on our own clock,
   * so that a stall shows as samples with no I/O; `extra` adds fields. Returns
   * the function that stops it.
   */
  sampleProgress(live: LiveCounters, extra?: () => Record<string, unknown>): () => void;
}

/** Connects to every port of o, prints 'connected', forwards the head's events. */
export async function connectWorkerHost(o: HostWorkerOptions): Promise<WorkerHost> {
  const session = new HostSession({
    head: { ...(o.policy ? { policy: o.policy as IoPolicy } : {}), ...(o.noPathTimeoutMs ? { noPathTimeoutMs: o.noPathTimeoutMs } : {}) },
  });
  const controllers: Controller[] = [];
  for (const p of o.ports) {
    controllers.push(
      await session.connect({
        traddr: p.traddr,
        trsvcid: p.trsvcid,
        subnqn: o.subnqn,
        katoMs: o.katoMs ?? 1000,
        reconnectDelayMs: o.reconnectDelayMs ?? 250,
        ctrlLossTmoMs: o.ctrlLossTmoMs ?? 60_000,
        nrIoQueues: 2,
        queueSize: 64,
      }),
    );
  }
  const head = session.head({ subnqn: o.subnqn });
  const paths = () => head.paths.map((p) => ({ name: p.name, address: p.address, state: p.controllerState, ana: anaStateName(p.anaState) }));
  emit({ type: 'connected', paths: paths() });
  for (const ev of ['path-up', 'path-down', 'failover-start', 'failover-end', 'no-path'] as const) {
    (head as unknown as NodeJS.EventEmitter).on(ev, (d: Record<string, unknown>) => {
      const detail: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(d ?? {})) detail[k] = v && typeof v === 'object' && 'name' in v ? (v as { name: string }).name : v;
      emit({ type: 'head', event: ev, detail });
    });
  }
  const sampleProgress = (live: LiveCounters, extra?: () => Record<string, unknown>): (() => void) => {
    let prev = { ios: 0, bytes: 0, at: performance.now() };
    const timer = setInterval(() => {
      const now = performance.now();
      const secs = (now - prev.at) / 1000;
      emit({
        type: 'progress',
        ...(extra ? extra() : {}),
        ios: live.ios,
        iops: Math.round((live.ios - prev.ios) / secs),
        mbps: +((live.bytes - prev.bytes) / secs / 1e6).toFixed(2),
        errors: live.errors,
        mismatches: live.mismatches,
        active: head.activePath?.name ?? null,
        paths: paths(),
      });
      prev = { ios: live.ios, bytes: live.bytes, at: now };
    }, o.progressMs ?? 250);
    return () => clearInterval(timer);
  };
  return { session, head, controllers, paths, sampleProgress };
}
