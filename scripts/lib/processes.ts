/**
 * Separate processes for end-to-end runs, demos and benchmarks: our target
 * (target/cli.ts with a config document) and a host worker (a HostSession
 * running a verified workload) that reports as JSON lines. Everything on
 * 127.0.0.1 (or inside network namespaces the caller made).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { controlRequest } from '../../target/control.ts';
import { waitFor } from './wait.ts';
import { MALLOC_TUNABLES, NODE_HEAP_FLAGS, dataProcessEnv as launchEnv } from '../../bin/lib/launch.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The V8 heap and glibc malloc settings of data-moving processes (target, host
 * workers, the bench and its raw baseline server) come from the one place the
 * bin/ wrappers and npm scripts take them from: bin/lib/launch.js says why.
 */
export { MALLOC_TUNABLES, NODE_HEAP_FLAGS };

/** The environment for a data-moving child process: ours plus MALLOC_TUNABLES (after any the caller set). */
export function dataProcessEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return launchEnv(process.env, extra);
}

function nodeArgs(script: string, args: string[]): string[] {
  // node --import tsx: the target is this very process, so a SIGKILL is a real crash.
  return [...NODE_HEAP_FLAGS, '--import', 'tsx', path.join(ROOT, script), ...args];
}

/** Optional command prefix, e.g. ['ip', 'netns', 'exec', 'ns1'] to run inside a namespace. */
export interface SpawnPlace {
  readonly prefix?: string[];
}

export interface TargetProcess {
  readonly dir: string;
  readonly control: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  readonly pid: number;
  ctl<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** SIGTERM and wait (clean stop). */
  stop(): Promise<void>;
  /** Resolves when the process has exited (code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startTargetProcess(
  doc: unknown,
  opts: SpawnPlace & { dir?: string; name?: string; logLevel?: string; stateDir?: string } = {},
): Promise<TargetProcess> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'nvmets-e2e-'));
  const name = opts.name ?? 'target';
  const config = path.join(dir, `${name}.json`);
  const control = path.join(dir, `${name}.sock`);
  const logFile = path.join(dir, `${name}.log`);
  writeFileSync(config, JSON.stringify(doc, null, 2));
  const args = nodeArgs('target/cli.ts', [
    '--config',
    config,
    '--control',
    control,
    '--log-level',
    opts.logLevel ?? 'info',
    ...(opts.stateDir ? ['--state-dir', opts.stateDir] : []),
  ]);
  const [cmd, ...pre] = opts.prefix?.length ? [...opts.prefix, process.execPath] : [process.execPath];
  const child = spawn(cmd, [...pre, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: dataProcessEnv({ FORCE_COLOR: '0' }) });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // Ready when the control endpoint answers (whatever the log level).
  let gone: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void exited.then((e) => (gone = e));
  const answers = async (): Promise<boolean> => {
    const g = gone;
    if (g) throw new Error(`target ${name} exited during start (${g.code ?? g.signal}); log: ${logFile}`);
    try {
      await controlRequest({ kind: 'unix', path: control }, 'show', {}, 2000);
      return true;
    } catch {
      return false;
    }
  };
  const ready = waitFor(answers, `target ${name} to start (log: ${logFile})`, 30_000, 100);
  try {
    await ready;
  } catch (err) {
    // Never leave a half-started target behind.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  }
  return {
    dir,
    control,
    logFile,
    child,
    pid: child.pid!,
    exited,
    ctl: <T>(method: string, params: Record<string, unknown> = {}) => controlRequest({ kind: 'unix', path: control }, method, params) as Promise<T>,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

/** Events a host worker prints, one JSON object per line. */
export type WorkerEvent =
  | { type: 'connected'; atMs: number; paths: { name: string; address: string; ana: string }[] }
  | {
      type: 'progress';
      atMs: number;
      rss: number;
      fds: number;
      ios: number;
      iops: number;
      mbps: number;
      errors: number;
      mismatches: number;
      active: string | null;
      paths: { name: string; state: string; ana: string }[];
    }
  | { type: 'head'; atMs: number; event: string; detail: Record<string, unknown> }
  | { type: 'result'; atMs: number; result: import('../../host/workload.ts').WorkloadResult; counters: Record<string, number> }
  | { type: 'error'; atMs: number; message: string };

export interface HostWorkerOptions {
  readonly ports: { traddr: string; trsvcid: number }[];
  readonly subnqn: string;
  readonly runtimeMs: number;
  readonly rw?: string;
  readonly bs?: number;
  readonly qd?: number;
  readonly policy?: string;
  readonly katoMs?: number;
  readonly reconnectDelayMs?: number;
  readonly ctrlLossTmoMs?: number;
  readonly noPathTimeoutMs?: number;
  readonly spanBlocks?: number;
  readonly progressMs?: number;
}

export interface HostWorker {
  readonly child: ChildProcess;
  readonly events: WorkerEvent[];
  on(listener: (e: WorkerEvent) => void): void;
  /** Resolves with the final result event (or rejects if the worker dies without one). */
  readonly done: Promise<Extract<WorkerEvent, { type: 'result' }>>;
  kill(): void;
}

export function startHostWorker(o: HostWorkerOptions, place: SpawnPlace = {}): HostWorker {
  const args = nodeArgs('scripts/lib/verified-io-worker.ts', [JSON.stringify(o)]);
  const [cmd, ...pre] = place.prefix?.length ? [...place.prefix, process.execPath] : [process.execPath];
  const child = spawn(cmd, [...pre, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: dataProcessEnv() });
  const events: WorkerEvent[] = [];
  const listeners: ((e: WorkerEvent) => void)[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const rl = readline.createInterface({ input: child.stdout });
  const done = new Promise<Extract<WorkerEvent, { type: 'result' }>>((resolve, reject) => {
    rl.on('line', (line) => {
      if (!line.startsWith('{')) return;
      let e: WorkerEvent;
      try {
        e = JSON.parse(line) as WorkerEvent;
      } catch {
        return;
      }
      events.push(e);
      for (const l of listeners) l(e);
      if (e.type === 'result') resolve(e);
      if (e.type === 'error') reject(new Error(`host worker: ${e.message}`));
    });
    child.once('exit', (code, signal) => reject(new Error(`host worker exited (${code ?? signal}) without a result\n${stderr.slice(-4000)}`)));
  });
  done.catch(() => undefined);
  return { child, events, on: (l) => listeners.push(l), done, kill: () => child.kill('SIGKILL') };
}
