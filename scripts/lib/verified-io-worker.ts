/**
 * The verified-I/O worker: a host in a process of its own that connects to
 * every given port, runs a verified workload (host/workload.ts: every block
 * carries its LBA, a generation and a CRC) through the multipath head and
 * reports as JSON lines on stdout, each stamped with atMs (since start):
 * connected, progress (every progressMs, on the worker's own clock, so a stall
 * shows as samples with no I/O), head (the head's events), result, error.
 *
 *   argv[2]  JSON WorkerArgs: HostWorkerOptions (scripts/lib/processes.ts),
 *            plus `scenario` and `errorBackoffMs` for the second form below
 *
 * Two forms:
 *  - plain (startHostWorker in scripts/lib/processes.ts: soak, demos): the
 *    workload runs for runtimeMs; progress carries the worker's RSS and open
 *    fds; the result is the workload's whole result and the head's counters.
 *  - scenario (startE2eWorker in scripts/e2e/worker.ts: the end-to-end
 *    scenarios, docs/scenarios.md), what they need from the host side while
 *    the workload runs:
 *      stdin  JSON lines, one control request each, answered by a 'control' event:
 *               {"id":1,"cmd":"disconnect","index":0}  Controller.disconnect() of the
 *                                                     controller connected to ports[index]
 *               {"id":2,"cmd":"activate","index":1}    Set Namespace Active (0xFE) on its path
 *               {"id":3,"cmd":"state"}                 the head's snapshot
 *               {"id":4,"cmd":"stop"}                  end the workload now (runtimeMs is then
 *                                                     only an upper bound); the final
 *                                                     read-back and the result follow
 *    - an I/O that fails is reported to the workload after errorBackoffMs (an
 *      application backing off). Without it, once no_path_timeout has passed,
 *      every new I/O fails synchronously and the workload's loop never yields
 *      to the event loop (no progress samples, millions of errors);
 *    - the result carries at most 100 error records, plus `errorClasses`:
 *      every error message with its numbers replaced by N, with its count;
 *    - a block holding the data of a write the application was told failed is
 *      not a mismatch but `indeterminate` (see runScenario): a failed write may
 *      have landed.
 */
import { readdirSync } from 'node:fs';
import readline from 'node:readline';
import { HostSession } from '../../host/session.ts';
import type { Controller } from '../../host/controller.ts';
import type { IoPolicy, MultipathHead } from '../../host/multipath/index.ts';
import { inspectBlock, runWorkload, type BlockDevice, type Mismatch, type Pattern } from '../../host/workload.ts';
import { anaStateName } from '../../shared/log-pages.ts';
import type { HostWorkerOptions } from './processes.ts';

/** What the spawners send as argv[2]. */
export interface WorkerArgs extends HostWorkerOptions {
  /** The end-to-end scenarios' form (see the header). */
  readonly scenario?: boolean;
  /** Scenario form: delay before a failed I/O is reported to the workload, ms (default 20). */
  readonly errorBackoffMs?: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as WorkerArgs;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const openFds = (): number => {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
};

/** An error message with its numbers replaced: one class per kind of error. */
function errorClass(message: string): string {
  return message.replace(/\d+/g, 'N');
}

const t0 = performance.now();

/** Milliseconds since this worker started. */
const sinceStart = (): number => Math.round(performance.now() - t0);

/** One JSON line on stdout, stamped with atMs. */
function emit(e: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ atMs: sinceStart(), ...e })}\n`);
}

/** The counters a workload updates as it goes (runWorkload's `live`). */
interface LiveCounters {
  ios: number;
  bytes: number;
  errors: number;
  mismatches: number;
}

interface WorkerHost {
  readonly session: HostSession;
  readonly head: MultipathHead;
  /** Controllers in the order of the ports given. */
  readonly controllers: Controller[];
  /** The head's paths as the events show them. */
  paths(): { name: string; address: string; state: string; ana: string }[];
  /**
   * Prints a progress line every progressMs (default 250) on our own clock,
   * so that a stall shows as samples with no I/O; `extra` adds fields. Returns
   * the function that stops it. A closure (no `this`): callers destructure it.
   */
  readonly sampleProgress: (live: LiveCounters, extra?: () => Record<string, unknown>) => () => void;
}

/** Connects to every port of opts, prints 'connected', forwards the head's events. */
async function connectHost(opts: HostWorkerOptions): Promise<WorkerHost> {
  const session = new HostSession({
    head: { ...(opts.policy ? { policy: opts.policy as IoPolicy } : {}), ...(opts.noPathTimeoutMs ? { noPathTimeoutMs: opts.noPathTimeoutMs } : {}) },
  });
  const controllers: Controller[] = [];
  for (const p of opts.ports) {
    controllers.push(
      await session.connect({
        traddr: p.traddr,
        trsvcid: p.trsvcid,
        subnqn: opts.subnqn,
        katoMs: opts.katoMs ?? 1000,
        reconnectDelayMs: opts.reconnectDelayMs ?? 250,
        ctrlLossTmoMs: opts.ctrlLossTmoMs ?? 60_000,
        nrIoQueues: 2,
        queueSize: 64,
      }),
    );
  }
  const head = session.head({ subnqn: opts.subnqn });
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
    }, opts.progressMs ?? 250);
    return () => clearInterval(timer);
  };
  return { session, head, controllers, paths, sampleProgress };
}

// ---------------------------------------------------------------- plain form

async function runPlain(w: WorkerHost): Promise<void> {
  const { session, head, sampleProgress } = w;
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

// ---------------------------------------------------------------- scenario form

async function runScenario(w: WorkerHost): Promise<void> {
  const { session, head, controllers: ctrls, sampleProgress } = w;

  const stop = new AbortController();
  // Control requests from the orchestrator, one JSON object a line.
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let req: { id?: unknown; cmd?: unknown; index?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      emit({ type: 'control', id: null, ok: false, error: 'not JSON' });
      return;
    }
    const id = req.id ?? null;
    const ctrlAt = (): Controller => {
      const i = req.index;
      if (typeof i !== 'number' || !ctrls[i]) throw new Error(`index: expected 0..${ctrls.length - 1}, got ${JSON.stringify(i)}`);
      return ctrls[i];
    };
    void (async () => {
      switch (req.cmd) {
        case 'disconnect': {
          const c = ctrlAt();
          await c.disconnect();
          return { controller: c.options.traddr + ':' + c.options.trsvcid, state: c.state };
        }
        case 'activate': {
          const c = ctrlAt();
          const p = head.paths.find((x) => c.paths.includes(x as never));
          if (!p) throw new Error(`controller ${req.index as number} has no path in the head`);
          const r = await p.setActive();
          return r.kind === 'completed' ? { path: p.name, kind: r.kind, status: r.status } : { path: p.name, kind: r.kind, reason: r.reason };
        }
        case 'state':
          return head.state();
        case 'stop':
          stop.abort();
          return { stopping: true };
        default:
          throw new Error(`unknown cmd ${JSON.stringify(req.cmd)} (disconnect, activate, state, stop)`);
      }
    })().then(
      (result) => emit({ type: 'control', id, ok: true, result }),
      (err: unknown) => emit({ type: 'control', id, ok: false, error: (err as Error).message }),
    );
  });

  // An application that backs off after a failed I/O (see the header).
  const backoff = o.errorBackoffMs ?? 20;
  const slow = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      await sleep(backoff);
      throw err;
    }
  };
  // LBAs that had a write fail: the generations of those writes, and the
  // generation the last read saw since the last write attempt. A failed write
  // may have landed, but only before its failure was reported: from then on
  // the block must not change until the next write to it.
  const watched = new Map<number, { failed: Set<number>; seen: number | null }>();
  const lateChanges: { lba: number; from: number; to: number; atMs: number }[] = [];
  const genOf = (b: Buffer): number => inspectBlock(b)?.generation ?? 0;
  const eachBlock = (slba: number, data: Buffer, fn: (lba: number, block: Buffer) => void): void => {
    for (let i = 0; (i + 1) * head.blockSize <= data.length; i++) fn(slba + i, data.subarray(i * head.blockSize, (i + 1) * head.blockSize));
  };
  const dev: BlockDevice = {
    blockSize: head.blockSize,
    get nblocks() {
      return head.nblocks;
    },
    read: (slba, nlb) =>
      slow(
        head.read(slba, nlb).then((data) => {
          if (watched.size > 0) {
            eachBlock(slba, data, (lba, block) => {
              const w = watched.get(lba);
              if (!w) return;
              const g = genOf(block);
              if (w.seen === null) w.seen = g;
              else if (g !== w.seen) lateChanges.push({ lba, from: w.seen, to: g, atMs: sinceStart() });
            });
          }
          return data;
        }),
      ),
    write: (slba, data) =>
      slow(
        head.write(slba, data).then(
          () => {
            if (watched.size > 0) eachBlock(slba, data, (lba) => watched.get(lba) && (watched.get(lba)!.seen = null));
          },
          (err: unknown) => {
            eachBlock(slba, data, (lba, block) => {
              const w = watched.get(lba) ?? { failed: new Set<number>(), seen: null };
              w.failed.add(genOf(block));
              w.seen = null;
              watched.set(lba, w);
            });
            throw err;
          },
        ),
      ),
  };

  const live = { ios: 0, bytes: 0, errors: 0, mismatches: 0 };
  const stopSampling = sampleProgress(live);
  const result = await runWorkload(dev, {
    rw: (o.rw ?? 'randrw') as Pattern,
    bs: o.bs ?? 4096,
    qd: o.qd ?? 8,
    runtimeMs: o.runtimeMs,
    verify: true,
    spanBlocks: o.spanBlocks ?? 16384,
    seed: 5,
    stallThresholdMs: 50,
    live,
    signal: stop.signal,
  });
  stopSampling();
  rl.close();
  // A write that failed may still have landed (it was executing when its
  // connection broke; the head fails it only once it can no longer land
  // *later*): its blocks are indeterminate, as after any failed write. The
  // workload only knows acknowledged generations, so it calls a block holding
  // such a write "stale" (newer than the last acknowledged one). Those, and
  // only those, are set apart here; any other mismatch stays one, and so does
  // a block that changed between two reads with no write to it in between
  // (a failed write landing after its failure was reported).
  const indeterminate: Mismatch[] = [];
  const mismatches: Mismatch[] = [];
  for (const m of result.mismatches) {
    if (m.kind === 'stale' && m.foundGeneration > m.expectedGeneration && watched.get(m.lba)?.failed.has(m.foundGeneration)) indeterminate.push(m);
    else mismatches.push(m);
  }
  for (const c of lateChanges) mismatches.push({ lba: c.lba, kind: 'stale', expectedGeneration: c.from, foundGeneration: c.to, foundLba: c.lba, atMs: c.atMs });
  const errorClasses: Record<string, number> = {};
  for (const e of result.errors) errorClasses[errorClass(e.message)] = (errorClasses[errorClass(e.message)] ?? 0) + 1;
  const state = head.state();
  emit({
    type: 'result',
    result: { ...result, errors: result.errors.slice(0, 100), mismatches: mismatches.slice(0, 100) },
    errorCount: result.errors.length,
    mismatchCount: mismatches.length,
    indeterminate: { count: indeterminate.length, sample: indeterminate.slice(0, 10) },
    errorClasses,
    counters: state.counters,
    head: {
      policy: state.policy,
      activePath: state.activePath,
      paths: state.paths.map((p) => ({ name: p.name, address: p.address, state: p.state, ana: p.ana, ios: p.ios, errors: p.errors })),
    },
  });
  await session.close();
  process.exit(0);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const w = await connectHost(o);
  await (o.scenario ? runScenario(w) : runPlain(w));
}

main().catch((err: unknown) => {
  // The scenarios want the stack, and their worker must end now: stdin (the
  // control lines) would keep it alive.
  if (o.scenario) {
    emit({ type: 'error', message: (err as Error).stack ?? (err as Error).message });
    process.exit(1);
  }
  emit({ type: 'error', message: (err as Error).message });
  process.exitCode = 1;
});
