/**
 * Shared pieces of the e2e scenarios: target and host worker processes that
 * are always stopped (afterEach), config documents, the assertions every
 * scenario makes, and the figures each scenario prints and records for the
 * summary table (scripts/e2e/summary.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, inject } from 'vitest';
import { defaultConfigDocument } from '../../target/config/index.ts';
import { freePort, startTargetProcess, type SpawnPlace, type TargetProcess } from '../../scripts/lib/processes.ts';
import { currentRunDir, recordFigures, registerPid, useRunDir } from '../../scripts/e2e/registry.ts';
import { p50, scenarioLine, type ScenarioFigures } from '../../scripts/e2e/summary.ts';
import { startE2eWorker, type E2eResult, type E2eWorker, type E2eWorkerOptions, type HeadEvent } from '../../scripts/e2e/worker.ts';

useRunDir(inject('e2eRunDir'));

export const SUBNQN = 'nqn.2026-11.io.nvmets:array0';
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type ConfigDoc = Record<string, any>;

/** defaultConfigDocument on the given TCP ports, a 64 MiB memory namespace, a unix control socket. */
export function configDoc(ports: number[], opts: { traddrs?: string[]; sizeBytes?: number } = {}): ConfigDoc {
  const doc = defaultConfigDocument({ ports, sizeBytes: opts.sizeBytes ?? 64 * 2 ** 20 }) as ConfigDoc;
  if (opts.traddrs) doc.ports.forEach((p: ConfigDoc, i: number) => (p.addr.traddr = opts.traddrs![i]));
  return doc;
}

/** Back namespace 1 with a file (created at start, kept across restarts). */
export function withFileStore(doc: ConfigDoc, file: string, size = '64M'): ConfigDoc {
  const ns = doc.subsystems[0].namespaces[0];
  ns.device = { path: file };
  ns.ext = { store: 'file', size, block_size: 512 };
  return doc;
}

export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; ports.length < n && i < 50; i++) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  if (ports.length < n) throw new Error(`could not find ${n} free ports`);
  return ports;
}

/** A fresh directory inside the run directory (so the next run's setup removes it). */
export function tempDir(tag: string): string {
  return mkdtempSync(path.join(currentRunDir() ?? os.tmpdir(), `${tag}-`));
}

interface Snapshot {
  ports: { portid: number; state: string; connections: number; faults: unknown; anaGroups: { grpid: number; state: string }[] }[];
  subsystems: { paths: { portid: number; grpid: number; state: string; active: boolean | null }[]; controllers: unknown[] }[];
}

/** Everything one scenario started; stop() ends it all (call it in afterEach). */
export class Rig {
  readonly targets: TargetProcess[] = [];
  readonly workers: E2eWorker[] = [];
  readonly #cleanups: (() => Promise<void>)[] = [];
  readonly t0 = Date.now();

  async target(doc: unknown, opts: SpawnPlace & { dir?: string; name?: string; stateDir?: string } = {}): Promise<TargetProcess> {
    const t = await startTargetProcess(doc, { ...opts, dir: opts.dir ?? tempDir('target') });
    registerPid(t.pid, 'target');
    this.targets.push(t);
    return t;
  }

  worker(o: Partial<E2eWorkerOptions> & Pick<E2eWorkerOptions, 'ports' | 'runtimeMs'>, place: SpawnPlace = {}): E2eWorker {
    const w = startE2eWorker({ subnqn: SUBNQN, katoMs: 1000, reconnectDelayMs: 100, ctrlLossTmoMs: 30_000, spanBlocks: 8192, ...o }, place);
    this.workers.push(w);
    return w;
  }

  onStop(fn: () => Promise<void>): void {
    this.#cleanups.push(fn);
  }

  /** Kill and stop everything; the workers' events go to <run dir>/<name>.events.jsonl (for diagnosis). */
  async stop(name = 'scenario'): Promise<void> {
    const dir = currentRunDir();
    const file = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
    this.workers.forEach((w, i) => {
      if (dir) writeFileSync(path.join(dir, `${file}${i ? `-${i}` : ''}.events.jsonl`), w.events.map((e) => JSON.stringify(e)).join('\n') + `\n${w.stderr()}`);
    });
    if (dir) writeFileSync(path.join(dir, `${file}.targets`), this.targets.map((t) => t.logFile).join('\n'));
    for (const w of this.workers) w.kill();
    await Promise.allSettled(this.targets.map((t) => t.stop()));
    for (const fn of this.#cleanups.reverse()) await fn().catch(() => undefined);
  }
}

export async function show(t: TargetProcess): Promise<Snapshot> {
  return t.ctl<Snapshot>('show');
}

/** The active port (active-standby) of group 1. */
export async function activePort(t: TargetProcess): Promise<number | null> {
  const s = await show(t);
  return s.subsystems[0]!.paths.find((p) => p.grpid === 1 && p.active)?.portid ?? null;
}

/** The I/O count of the latest progress sample. */
export function iosNow(w: E2eWorker): number {
  for (let i = w.events.length - 1; i >= 0; i--) {
    const e = w.events[i]!;
    if (e.type === 'progress') return e.ios;
  }
  return 0;
}

/** Wait until the workload has done `n` more I/Os than now (proof that I/O flows). */
export async function flowing(w: E2eWorker, n = 200, timeoutMs = 10_000): Promise<void> {
  const from = iosNow(w);
  await w.waitFor((e) => e.type === 'progress' && e.ios >= from + n, timeoutMs, `${n} more I/Os after ${from}`);
}

export function headEvents(w: E2eWorker, name?: string): HeadEvent[] {
  return w.events.filter((e): e is HeadEvent => e.type === 'head' && (name === undefined || e.event === name));
}

/**
 * The scenario's figures, printed as one line and recorded for the table.
 * Call it before the assertions so a failing scenario still shows its numbers.
 */
export function report(name: string, rig: Rig, w: E2eWorker, r: E2eResult, note = ''): ScenarioFigures {
  const failoverMs = headEvents(w, 'failover-end').map((e) => Number(e.detail['durationMs']));
  const stallsMs = r.result.stalls.map((s) => Math.round(s.durationMs));
  const f: ScenarioFigures = {
    name,
    ios: r.result.ios,
    errors: r.errorCount,
    mismatches: r.mismatchCount,
    verifiedBlocks: r.result.verifiedBlocks,
    failovers: r.counters.failovers,
    failoverMs,
    stallsMs,
    stallP50Ms: p50(stallsMs),
    stallMaxMs: Math.round(r.result.maxStallMs),
    wallMs: Date.now() - rig.t0,
    note,
  };
  console.log(scenarioLine(f));
  recordFigures(f);
  return f;
}

/** No error, no mismatch, reads and writes done, the final read-back checked blocks. */
export function assertClean(r: E2eResult): void {
  expect(r.errorCount, `errors: ${JSON.stringify(r.errorClasses)} first: ${JSON.stringify(r.result.errors.slice(0, 3))}`).toBe(0);
  assertDataIntact(r);
}

/** Zero mismatches during the run and in the final read-back, which covered blocks. */
export function assertDataIntact(r: E2eResult): void {
  expect(r.mismatchCount, `mismatches: ${JSON.stringify(r.result.mismatches.slice(0, 5))}`).toBe(0);
  expect(r.result.writes, 'writes acknowledged').toBeGreaterThan(100);
  expect(r.result.reads, 'reads done').toBeGreaterThan(100);
  expect(r.result.verifiedBlocks, 'blocks checked by the final read-back').toBeGreaterThan(0);
}
