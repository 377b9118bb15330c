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
 * V8 heap settings for processes that move data (target, host workers, the
 * bench and its raw baseline server alike). With V8's default starting limit
 * for the old generation (a few MB above a ~10 MB live heap) every socket read
 * (a fresh 64 KiB ArrayBuffer from Node) kept incremental marking going: a
 * mark-compact every ~12 ms at 1 GB/s, 25-40 % of the target's time. A 64 MiB
 * starting limit ends that (trace-gc: 238 -> 8 mark-compacts per 4 s of 128 KiB
 * writes); it is a limit, not an allocation. The npm scripts pass the same flag.
 */
export const NODE_HEAP_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/**
 * glibc malloc settings for the same processes. Node mallocs a fresh 64 KiB
 * buffer for every socket read and frees it in batches after each scavenge;
 * with glibc's adaptive thresholds the heap was trimmed and grown again under
 * those buffers, and the kernel then took 3-8 page faults per 128 KiB write
 * filling fresh pages (the target's slow runs: 2 000-2 400 MB/s against
 * 2 700-3 300 without faults, in a long-running target). Fixed thresholds
 * (trim only above 256 MiB free at the top of the heap; mmap for 1 MiB and
 * more, which the memory store's slabs are, so they still go back to the
 * system when freed) end the faults (0.02-0.03 per write). Ignored by a libc
 * other than glibc. The npm scripts and bin/ launchers set the same.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=1048576';

/** The environment for a data-moving child process: ours plus MALLOC_TUNABLES (after any the caller set). */
export function dataProcessEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const own = process.env.GLIBC_TUNABLES;
  return { ...process.env, GLIBC_TUNABLES: own && !own.includes('glibc.malloc.trim_threshold') ? `${own}:${MALLOC_TUNABLES}` : (own ?? MALLOC_TUNABLES), ...extra };
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

export async function startTargetProcess(doc: unknown, opts: SpawnPlace & { dir?: string; name?: string; logLevel?: string; stateDir?: string } = {}): Promise<TargetProcess> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'nvmets-e2e-'));
  const name = opts.name ?? 'target';
  const config = path.join(dir, `${name}.json`);
  const control = path.join(dir, `${name}.sock`);
  const logFile = path.join(dir, `${name}.log`);
  writeFileSync(config, JSON.stringify(doc, null, 2));
  const args = nodeArgs('target/cli.ts', ['--config', config, '--control', control, '--log-level', opts.logLevel ?? 'info', ...(opts.stateDir ? ['--state-dir', opts.stateDir] : [])]);
  const [cmd, ...pre] = opts.prefix?.length ? [...opts.prefix, process.execPath] : [process.execPath];
  const child = spawn(cmd!, [...pre, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: dataProcessEnv({ FORCE_COLOR: '0' }) });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // Ready when the control endpoint answers (whatever the log level).
  const ready = (async () => {
    const deadline = Date.now() + 30_000;
    let gone: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    void exited.then((e) => (gone = e));
    for (;;) {
      if (gone) throw new Error(`target ${name} exited during start (${(gone as { code: number | null }).code ?? (gone as { signal: string }).signal}); log: ${logFile}`);
      if (Date.now() > deadline) throw new Error(`target ${name} did not start in 30 s (log: ${logFile})`);
      try {
        await controlRequest({ kind: 'unix', path: control }, 'show', {}, 2000);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
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
  | { type: 'progress'; atMs: number; rss: number; fds: number; ios: number; iops: number; mbps: number; errors: number; mismatches: number; active: string | null; paths: { name: string; state: string; ana: string }[] }
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
  const args = nodeArgs('scripts/lib/host-worker.ts', [JSON.stringify(o)]);
  const [cmd, ...pre] = place.prefix?.length ? [...place.prefix, process.execPath] : [process.execPath];
  const child = spawn(cmd!, [...pre, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: dataProcessEnv() });
  const events: WorkerEvent[] = [];
  const listeners: ((e: WorkerEvent) => void)[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const rl = readline.createInterface({ input: child.stdout! });
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
