/**
 * Orchestrator side of the verified-I/O worker in its scenario form
 * (scripts/lib/verified-io-worker.ts): spawn it (optionally inside a network
 * namespace), collect its JSON events, send it control lines.
 * The event shapes are those of scripts/lib/processes.ts plus 'control' and
 * the extra fields of 'result'.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT, dataProcessEnv, type HostWorkerOptions, type SpawnPlace, type WorkerEvent } from '../lib/processes.ts';
import type { HeadCounters } from '../../host/multipath/index.ts';
import type { WorkloadResult } from '../../host/workload.ts';
import { registerPid } from './registry.ts';
import type { WorkerArgs } from '../lib/verified-io-worker.ts';

export interface E2eWorkerOptions extends HostWorkerOptions {
  /** Delay before a failed I/O is reported to the workload, ms (default 20). */
  readonly errorBackoffMs?: number;
}

export interface E2eResult {
  readonly type: 'result';
  readonly atMs: number;
  /** errors and mismatches hold at most 100 records each; the counts are below. */
  readonly result: WorkloadResult;
  readonly errorCount: number;
  readonly mismatchCount: number;
  /** Blocks found holding a write that had failed (newer than the last acknowledged one): not mismatches. */
  readonly indeterminate: { count: number; sample: import('../../host/workload.ts').Mismatch[] };
  readonly errorClasses: Record<string, number>;
  readonly counters: HeadCounters;
  readonly head: {
    policy: string;
    activePath: string | null;
    paths: { name: string; address: string; state: string; ana: string; ios: number; errors: number }[];
  };
}

export interface PathView {
  readonly name: string;
  readonly address: string;
  readonly state: string;
  readonly ana: string;
}
export type ControlEvent = { type: 'control'; atMs: number; id: number | null; ok: boolean; result?: unknown; error?: string };
export type ConnectedEvent = { type: 'connected'; atMs: number; paths: PathView[] };
export type ProgressEvent = Omit<Extract<WorkerEvent, { type: 'progress' }>, 'paths'> & { paths: PathView[] };
export type HeadEvent = Extract<WorkerEvent, { type: 'head' }>;
export type E2eEvent = ConnectedEvent | ProgressEvent | HeadEvent | Extract<WorkerEvent, { type: 'error' }> | E2eResult | ControlEvent;

export interface E2eWorker {
  readonly child: ChildProcess;
  readonly events: E2eEvent[];
  readonly stderr: () => string;
  on(listener: (e: E2eEvent) => void): void;
  /** Resolves once the worker is connected to every port. */
  readonly connected: Promise<Extract<E2eEvent, { type: 'connected' }>>;
  /** The final result (rejects if the worker dies without one). */
  readonly done: Promise<E2eResult>;
  /** Send a control request; resolves with its result, rejects with its error (30 s bound). */
  request<T = unknown>(cmd: string, params?: Record<string, unknown>): Promise<T>;
  /** Resolves with the first event matching (among events[fromIndex..] and later ones), or rejects after timeoutMs. */
  waitFor<E extends E2eEvent = E2eEvent>(pred: (e: E2eEvent) => boolean, timeoutMs: number, what: string, fromIndex?: number): Promise<E>;
  /** events.length now: pass it as fromIndex to wait for something that happens from now on. */
  mark(): number;
  kill(): void;
}

export function startE2eWorker(o: E2eWorkerOptions, place: SpawnPlace = {}): E2eWorker {
  const args = ['--import', 'tsx', path.join(ROOT, 'scripts/lib/verified-io-worker.ts'), JSON.stringify({ ...o, scenario: true } satisfies WorkerArgs)];
  const [cmd, ...pre] = place.prefix?.length ? [...place.prefix, process.execPath] : [process.execPath];
  const child = spawn(cmd, [...pre, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: dataProcessEnv() });
  if (child.pid) registerPid(child.pid, 'host-worker');
  child.stdin.on('error', () => undefined);
  const events: E2eEvent[] = [];
  const listeners: ((e: E2eEvent) => void)[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
  });
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(String(code ?? signal))));
  const rl = readline.createInterface({ input: child.stdout });
  const waitFor = <E extends E2eEvent>(pred: (e: E2eEvent) => boolean, timeoutMs: number, what: string, fromIndex = 0): Promise<E> => {
    const seen = events.slice(fromIndex).find(pred);
    if (seen) return Promise.resolve(seen as E);
    return new Promise<E>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new Error(`host worker: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      listeners.push((e) => {
        if (!settled && pred(e)) {
          settled = true;
          clearTimeout(timer);
          resolve(e as E);
        }
      });
      void exited.then((how) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new Error(`host worker exited (${how}) before ${what}\n${stderr.slice(-4000)}`));
      });
    });
  };
  rl.on('line', (line) => {
    if (!line.startsWith('{')) return;
    let e: E2eEvent;
    try {
      e = JSON.parse(line) as E2eEvent;
    } catch {
      return;
    }
    events.push(e);
    for (const l of [...listeners]) l(e);
  });
  const failure = (e: E2eEvent) => e.type === 'error';
  const done = Promise.race([
    waitFor<E2eResult>((e) => e.type === 'result', 600_000, 'result'),
    waitFor<Extract<E2eEvent, { type: 'error' }>>(failure, 600_000, 'error').then((e) => Promise.reject(new Error(`host worker: ${e.message}`))),
  ]);
  done.catch(() => undefined);
  const connected = Promise.race([
    waitFor<Extract<E2eEvent, { type: 'connected' }>>((e) => e.type === 'connected', 30_000, 'connected event'),
    waitFor<Extract<E2eEvent, { type: 'error' }>>(failure, 30_000, 'error').then((e) => Promise.reject(new Error(`host worker: ${e.message}`))),
  ]);
  connected.catch(() => undefined);
  let nextId = 1;
  return {
    child,
    events,
    stderr: () => stderr,
    on: (l) => listeners.push(l),
    connected,
    done,
    request: async <T>(cmd: string, params: Record<string, unknown> = {}) => {
      const id = nextId++;
      child.stdin.write(`${JSON.stringify({ id, cmd, ...params })}\n`);
      const ans = await waitFor<ControlEvent>((e) => e.type === 'control' && e.id === id, 30_000, `answer to ${cmd}`);
      if (!ans.ok) throw new Error(`host worker ${cmd}: ${ans.error}`);
      return ans.result as T;
    },
    waitFor,
    mark: () => events.length,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
