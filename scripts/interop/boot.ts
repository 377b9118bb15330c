// Boot a throw-away Linux guest (Debian's kernel under qemu TCG) that runs one shell
// script and powers off. Built by scripts/interop/build.sh.
//
// The guest has two serial ports:
//   ttyS0  the console (kernel log + the script's stdout/stderr) -> qemu stdout -> here
//   ttyS1  the control channel, a unix socket this process listens on; the guest
//          script reaches it through fd 7 and the helpers of /etc/rig.sh
//          (rig_send, rig_step, rig_recv, rig_wait).
// Networking is qemu user mode with restrict=on: the guest reaches nothing but the
// explicit forwards (host 127.0.0.1 -> guest, and guest 10.0.2.x:port -> 127.0.0.1).
//
// CLI: npx tsx scripts/interop/boot.ts --script FILE [--guestfwd 10.0.2.100:4420=4420]
//        [--hostfwd 14420=4420] [--timeout 120] [--fio] [--mem 256] [--log FILE]

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { appendFile, copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCpio } from './cpio.ts';

// ------------------------------------------------------------------ types

/** Guest connects to guestAddr:guestPort, qemu runs `socat - TCP:127.0.0.1:hostPort`. */
export interface GuestForward {
  guestAddr: string;
  guestPort: number;
  hostPort: number;
}

/** 127.0.0.1:hostPort on this machine is forwarded to the guest's 10.0.2.15:guestPort. */
export interface HostForward {
  hostPort: number;
  guestPort: number;
}

export interface BootOptions {
  /** Shell script (busybox ash) run as /rig/script.sh with /etc/rig.sh sourced. Its exit
   *  status is the run's exitCode. */
  script: string;
  /** Guest time budget. The guest powers itself off after it (exit code 124); this
   *  process kills qemu 5 s later at the latest; a `timeout` wrapper 15 s later still. */
  timeoutMs: number;
  guestfwd?: GuestForward[];
  hostfwd?: HostForward[];
  /** Write the console (plus `#ctl` lines for control traffic) to this file as it comes.
   *  Default: a new file in $NVME_INTEROP_LOG_DIR if that is set, else none. */
  consoleLogPath?: string;
  /** Guest memory (default 256, or 512 with fio). */
  memMb?: number;
  /** vCPUs (default 2: Linux's host then opens 2 I/O queues per controller). */
  cpus?: number;
  /** Add the fio layer (about 75 MB more initramfs, +0.5-1 s boot). */
  withFio?: boolean;
  /** Modules /init loads before the script (default ['nvme-tcp', 'nvmet-tcp']).
   *  Crypto helpers, configfs and virtio-net are always loaded. */
  modules?: string[];
  /** Console log level while the script runs (default 6: nvme's info messages show). */
  kernelLogLevel?: number;
  /** Bring up eth0 (default true). */
  net?: boolean;
  /** Extra files for the guest: absolute guest path -> content (mode 0755 if it starts with #!). */
  files?: Record<string, string | Uint8Array>;
  /** Called with each console line as it arrives. */
  onConsoleLine?: (line: string) => void;
  /** Called with each console chunk as it arrives (raw, for live printing). */
  onConsoleData?: (chunk: string) => void;
  /** Image directory (default: the image of `kernel`). */
  imageDir?: string;
  /** Which kernel of the matrix to boot (default '6.1'); ignored when imageDir is given. */
  kernel?: RigKernel;
  /** Boot the uncompressed kernel through PVH (default when the image has it) or the bzImage. */
  kernelBoot?: 'pvh' | 'bzimage';
  extraKernelArgs?: string[];
  extraQemuArgs?: string[];
}

export type EventSource = 'control' | 'console';

export type GuestEvent =
  /** /init finished setup (modules, network); the script starts now. */
  | { kind: 'ready'; atMs: number }
  /** `@@STEP name status detail` (rig_step, or echoed to the console by hand). */
  | { kind: 'step'; name: string; status: string; detail: string; source: EventSource; atMs: number }
  /** Any other line the guest sent on the control channel (rig_send). */
  | { kind: 'message'; text: string; atMs: number }
  /** The script ended with this status (124: the guest watchdog fired). */
  | { kind: 'exit'; code: number; atMs: number };

export type StepEvent = Extract<GuestEvent, { kind: 'step' }>;

export interface GuestResult {
  /** The script's exit status; null if the guest died before reporting one. */
  exitCode: number | null;
  /** exited: the script ended and the guest powered off; timeout: guest watchdog or host
   *  kill on timeout; killed: kill() was called; crashed: qemu ended with no exit report. */
  reason: 'exited' | 'timeout' | 'killed' | 'crashed';
  console: string;
  /** The guest's full `dmesg`, dumped after the script. Empty if the guest did not get there. */
  dmesg: string[];
  steps: StepEvent[];
  events: GuestEvent[];
  /** Milliseconds from qemu start to the guest's READY (null if never). */
  bootMs: number | null;
  durationMs: number;
  qemuExitCode: number | null;
  qemuSignal: NodeJS.Signals | null;
  qemuStderr: string;
}

export interface GuestRun {
  readonly pid: number;
  /** Resolves when qemu has exited (never rejects). */
  wait(): Promise<GuestResult>;
  /** Stop the guest now (SIGTERM, then SIGKILL after 3 s). */
  kill(): Promise<GuestResult>;
  /** Send one line to the guest's control channel (queued until the guest is READY). */
  send(line: string): void;
  /** The first event (already seen or future) matching `match`; rejects on timeout or
   *  if the guest ends first. A string matches a step of that name. */
  waitFor(match: string | ((e: GuestEvent) => boolean), timeoutMs?: number): Promise<GuestEvent>;
  /** waitFor a step by name; rejects if its status is not `ok` unless allowFail. */
  waitForStep(name: string, timeoutMs?: number, allowFail?: boolean): Promise<StepEvent>;
  /** All events, past and future, ending when the guest ends. */
  events(): AsyncIterableIterator<GuestEvent>;
  /** Console text so far. */
  console(): string;
  /** Kernel log lines seen on the console so far (`[   12.345678] ...`). */
  kernelLines(): string[];
  /** 'event' (GuestEvent), 'line' (console line), 'control' (raw control line), 'exit' (GuestResult). */
  readonly emitter: EventEmitter;
}

// ------------------------------------------------------------------ image

/** scripts/interop (where guest/init and guest/rig.sh live). */
export const rigDir = path.dirname(fileURLToPath(import.meta.url));

export function cacheDir(): string {
  return process.env.NVME_INTEROP_CACHE ?? path.join(os.homedir(), '.cache', 'nvme-tcp-interop');
}

/** The kernels of the interop matrix: Debian's linux-image-amd64 of each release. */
export const RIG_KERNELS = ['6.1', '6.12', '7.2'] as const;
export type RigKernel = (typeof RIG_KERNELS)[number];

/** The Debian release each kernel comes from; build.sh takes either name. */
export const KERNEL_RELEASE: Readonly<Record<RigKernel, string>> = { '6.1': 'bookworm', '6.12': 'trixie', '7.2': 'forky' };

export function isRigKernel(s: string): s is RigKernel {
  return (RIG_KERNELS as readonly string[]).includes(s);
}

/** The kernels a run covers: INTEROP_KERNELS (comma or space separated, "all"), else all three. */
export function selectedKernels(env: string | undefined = process.env.INTEROP_KERNELS): RigKernel[] {
  if (env === undefined || env.trim() === '' || env.trim() === 'all') return [...RIG_KERNELS];
  const out: RigKernel[] = [];
  for (const k of env.split(/[\s,]+/).filter(Boolean)) {
    if (!isRigKernel(k)) throw new Error(`INTEROP_KERNELS: unknown kernel ${k} (known: ${RIG_KERNELS.join(', ')})`);
    if (!out.includes(k)) out.push(k);
  }
  return out;
}

/** Where build.sh puts a kernel's image: 6.1 (this machine's own release) at the cache's top,
 *  the newer releases in a folder of their own with their private apt configuration. */
export function imageDirFor(kernel: RigKernel = '6.1'): string {
  return kernel === '6.1' ? path.join(cacheDir(), 'current') : path.join(cacheDir(), KERNEL_RELEASE[kernel], 'current');
}

export interface ImageManifest {
  key: string;
  /** Debian release of the kernel and the guest userland (absent in images built before the matrix: bookworm). */
  release?: string;
  kernelPackage: string;
  kernelVersion: string;
  kernelRelease: string;
  kernelBoot: 'pvh' | 'bzimage';
  hostnqn: string;
  hostid: string;
  modules: string[];
  packages: Record<string, string>;
}

export interface RigImage {
  dir: string;
  vmlinuz: string;
  /** Uncompressed kernel with a PVH entry (booted directly, about 2 s faster), if built. */
  vmlinux: string | null;
  baseCpio: string;
  fioCpio: string;
  manifest: ImageManifest;
}

/** The built image, or null if build.sh has not run (tests use this to skip). */
export function findImage(imageDir?: string, kernel?: RigKernel): RigImage | null {
  const dir = imageDir ?? imageDirFor(kernel);
  const mf = path.join(dir, 'manifest.json');
  if (!existsSync(mf)) return null;
  const vmlinux = path.join(dir, 'vmlinux');
  return {
    dir,
    vmlinuz: path.join(dir, 'vmlinuz'),
    vmlinux: existsSync(vmlinux) ? vmlinux : null,
    baseCpio: path.join(dir, 'base.cpio'),
    fioCpio: path.join(dir, 'fio.cpio'),
    manifest: JSON.parse(readFileSync(mf, 'utf8')) as ImageManifest,
  };
}

/** True when the image exists and qemu, socat are installed. */
export function rigAvailable(kernel?: RigKernel): boolean {
  return findImage(undefined, kernel) !== null && commandExists('qemu-system-x86_64') && commandExists('socat');
}

function commandExists(cmd: string): boolean {
  const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  return dirs.some((d) => existsSync(path.join(d, cmd)));
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

// ------------------------------------------------------------------ boot

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad ${what}: ${p}`);
}

/** qemu's -netdev user option string (exported for tests of the option syntax). */
export function netdevOption(hostfwd: HostForward[] = [], guestfwd: GuestForward[] = []): string {
  const parts = ['user', 'id=n0', 'restrict=on', 'net=10.0.2.0/24', 'host=10.0.2.2'];
  for (const f of hostfwd) {
    checkPort(f.hostPort, 'hostPort');
    checkPort(f.guestPort, 'guestPort');
    parts.push(`hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`);
  }
  for (const f of guestfwd) {
    if (!IPV4.test(f.guestAddr) || !f.guestAddr.startsWith('10.0.2.')) {
      throw new Error(`guestfwd address must be in 10.0.2.0/24: ${f.guestAddr}`);
    }
    checkPort(f.guestPort, 'guestPort');
    checkPort(f.hostPort, 'hostPort');
    // One socat per guest connection (NVMe/TCP opens one per queue); its log must not
    // end up in the guest's TCP stream, hence -lf /dev/null.
    parts.push(`guestfwd=tcp:${f.guestAddr}:${f.guestPort}-cmd:socat -lf /dev/null - TCP:127.0.0.1:${f.hostPort}`);
  }
  return parts.join(',');
}

const DEFAULT_MODULES = ['nvme-tcp', 'nvmet-tcp'];

export async function bootGuest(opts: BootOptions): Promise<GuestRun> {
  const image = findImage(opts.imageDir, opts.kernel);
  if (!image) throw new Error(`no rig image in ${opts.imageDir ?? imageDirFor(opts.kernel)}: run scripts/interop/build.sh ${opts.kernel ?? ''}`);
  if (!(opts.timeoutMs > 0)) throw new Error('timeoutMs is required');
  const guestTimeoutS = Math.max(5, Math.ceil(opts.timeoutMs / 1000));
  const modules = opts.modules ?? DEFAULT_MODULES;
  for (const m of modules) if (!/^[\w-]+$/.test(m)) throw new Error(`bad module name ${m}`);

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'nvme-rig-'));
  let ctlServer: net.Server | null = null;
  try {
    // initrd = base (+ fio) + this run's archive
    // The current /init and /etc/rig.sh overlay the image's copies (later archives win).
    const entries = [
      { path: 'init', data: readFileSync(path.join(rigDir, 'guest', 'init'), 'utf8'), mode: 0o755 },
      { path: 'etc/rig.sh', data: readFileSync(path.join(rigDir, 'guest', 'rig.sh'), 'utf8'), mode: 0o644 },
      { path: 'rig/script.sh', data: opts.script, mode: 0o755 },
    ];
    for (const [p, data] of Object.entries(opts.files ?? {})) {
      const isExec = typeof data === 'string' ? data.startsWith('#!') : data[0] === 0x23 && data[1] === 0x21;
      entries.push({ path: p, data: data as string, mode: isExec ? 0o755 : 0o644 });
    }
    // The kernel unpacks concatenated newc archives; each must start 4-byte aligned
    // (busybox cpio pads its archives to 512 bytes).
    const initrd = path.join(tmp, 'initrd');
    await copyFile(image.baseCpio, initrd);
    if (opts.withFio) await pipeline(createReadStream(image.fioCpio), createWriteStream(initrd, { flags: 'a' }));
    const size = (await stat(initrd)).size;
    await appendFile(initrd, Buffer.concat([Buffer.alloc((4 - (size % 4)) % 4), buildCpio(entries)]));
    const kernel = (opts.kernelBoot ?? image.manifest.kernelBoot) === 'pvh' && image.vmlinux ? image.vmlinux : image.vmlinuz;

    const ctlPath = path.join(tmp, 'ctl.sock');
    const server = net.createServer();
    ctlServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ctlPath, () => resolve());
    });

    const append = [
      'console=ttyS0,115200',
      'quiet',
      'panic=-1',
      'oops=panic',
      'random.trust_cpu=on',
      'mitigations=off',
      `rig.timeout=${guestTimeoutS}`,
      `rig.loglevel=${opts.kernelLogLevel ?? 6}`,
      `rig.net=${opts.net === false ? 0 : 1}`,
      ...(modules.length ? [`rig.mods=${modules.join(',')}`] : []),
      ...(opts.extraKernelArgs ?? []),
    ].join(' ');
    const mem = opts.memMb ?? (opts.withFio ? 512 : 256);
    const qemuArgs = [
      '-nodefaults',
      '-no-user-config',
      '-no-reboot',
      '-machine',
      'pc,accel=tcg',
      '-cpu',
      'max',
      '-smp',
      String(opts.cpus ?? 2),
      '-m',
      String(mem),
      '-display',
      'none',
      '-monitor',
      'none',
      '-kernel',
      kernel,
      '-initrd',
      initrd,
      '-append',
      append,
      '-chardev',
      'stdio,id=con,signal=off',
      '-serial',
      'chardev:con',
      '-chardev',
      `socket,id=ctl,path=${ctlPath}`,
      '-serial',
      'chardev:ctl',
      '-netdev',
      netdevOption(opts.hostfwd, opts.guestfwd),
      '-device',
      'virtio-net-pci,netdev=n0,romfile=',
      ...(opts.extraQemuArgs ?? []),
    ];
    // `timeout` is the backstop should this process die without killing qemu.
    // Own process group (timeout makes one anyway): kill(-pid) reaches qemu and its socats.
    const child = spawn('timeout', ['-k', '5', String(guestTimeoutS + 20), 'qemu-system-x86_64', ...qemuArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    return startRun(child, server, tmp, opts, guestTimeoutS);
  } catch (err) {
    ctlServer?.close();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

const live = new Set<ChildProcess>();
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) killGroup(c, 'SIGKILL');
    });
  }
}

function startRun(child: ChildProcess, ctlServer: net.Server, tmp: string, opts: BootOptions, guestTimeoutS: number): GuestRun {
  trackChild(child);
  const t0 = Date.now();
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const events: GuestEvent[] = [];
  const consoleChunks: string[] = [];
  const kernel: string[] = [];
  let stderr = '';
  let consolePartial = '';
  let ctlPartial = '';
  let ctlSock: net.Socket | null = null;
  let ready = false;
  const pendingSend: string[] = [];
  let exitCode: number | null = null;
  let consoleExitCode: number | null = null;
  let killedBy: 'timeout' | 'killed' | null = null;
  let finished: GuestResult | null = null;
  const logPath =
    opts.consoleLogPath ??
    (process.env.NVME_INTEROP_LOG_DIR
      ? path.join(process.env.NVME_INTEROP_LOG_DIR, `guest-${new Date(t0).toISOString().replace(/[:.]/g, '-')}-${child.pid}.log`)
      : undefined);
  const log: WriteStream | null = logPath ? createWriteStream(logPath) : null;
  log?.on('error', () => undefined);

  const emit = (e: GuestEvent): void => {
    events.push(e);
    emitter.emit('event', e);
  };

  // --- console
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    consoleChunks.push(chunk);
    log?.write(chunk);
    opts.onConsoleData?.(chunk);
    const lines = (consolePartial + chunk).split('\n');
    consolePartial = lines.pop() ?? '';
    for (const raw of lines) onConsoleLine(raw.replace(/\r/g, ''));
  });
  const onConsoleLine = (line: string): void => {
    if (/^\[\s*\d+\.\d+\]/.test(line)) kernel.push(line);
    const step = /^@@STEP (\S+) (\S+) ?(.*)$/.exec(line);
    if (step) emit({ kind: 'step', name: step[1]!, status: step[2]!, detail: step[3]!, source: 'console', atMs: Date.now() - t0 });
    const ex = /^@@EXIT (\d+)/.exec(line);
    if (ex) consoleExitCode = Number(ex[1]);
    opts.onConsoleLine?.(line);
    emitter.emit('line', line);
  };
  child.on('error', (err) => {
    stderr += `spawn error: ${err.message}\n`;
  });
  // qemu gone: its guestfwd socats hold our stderr pipe until they notice; do not wait long.
  child.once('exit', () => setTimeout(() => killGroup(child, 'SIGKILL'), 2000).unref());
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr += d;
    log?.write(`#qemu-stderr ${d}`);
  });

  // --- control channel
  ctlServer.on('connection', (sock) => {
    if (ctlSock) {
      sock.destroy();
      return;
    }
    ctlSock = sock;
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (chunk: string) => {
      const lines = (ctlPartial + chunk).split('\n');
      ctlPartial = lines.pop() ?? '';
      for (const raw of lines) onControlLine(raw.replace(/\r/g, ''));
    });
  });
  const onControlLine = (line: string): void => {
    if (line === '') return;
    log?.write(`#ctl guest> ${line}\n`);
    emitter.emit('control', line);
    const atMs = Date.now() - t0;
    if (line.startsWith('@@READY')) {
      ready = true;
      emit({ kind: 'ready', atMs });
      for (const l of pendingSend.splice(0)) writeControl(l);
      return;
    }
    const step = /^@@STEP (\S+) (\S+) ?(.*)$/.exec(line);
    if (step) {
      emit({ kind: 'step', name: step[1]!, status: step[2]!, detail: step[3]!, source: 'control', atMs });
      return;
    }
    const ex = /^@@EXIT (\d+)/.exec(line);
    if (ex) {
      exitCode = Number(ex[1]);
      emit({ kind: 'exit', code: exitCode, atMs });
      return;
    }
    emit({ kind: 'message', text: line, atMs });
  };
  const writeControl = (line: string): void => {
    log?.write(`#ctl host> ${line}\n`);
    ctlSock?.write(line + '\n');
  };

  // --- end of run
  const hostTimer = setTimeout(
    () => {
      killedBy ??= 'timeout';
      stop();
    },
    guestTimeoutS * 1000 + 5000,
  );
  let killTimer: NodeJS.Timeout | null = null;
  const stop = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM'); // timeout passes it on to qemu, which exits cleanly
    killTimer ??= setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
  };

  const done = new Promise<GuestResult>((resolve) => {
    const onClose = async (code: number | null, signal: NodeJS.Signals | null): Promise<void> => {
      clearTimeout(hostTimer);
      if (killTimer) clearTimeout(killTimer);
      if (consolePartial) onConsoleLine(consolePartial.replace(/\r/g, ''));
      ctlSock?.destroy();
      ctlServer.close();
      log?.end();
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      const text = consoleChunks.join('').replace(/\r/g, '');
      const code2 = exitCode ?? consoleExitCode;
      let reason: GuestResult['reason'];
      if (killedBy === 'killed') reason = 'killed';
      else if (killedBy === 'timeout' || code2 === 124 || /^@@TIMEOUT/m.test(text)) reason = 'timeout';
      else if (code2 === null) reason = 'crashed';
      else reason = 'exited';
      const readyEvent = events.find((e) => e.kind === 'ready');
      finished = {
        exitCode: code2,
        reason,
        console: text,
        dmesg: extractDmesg(text),
        steps: events.filter((e): e is StepEvent => e.kind === 'step'),
        events: [...events],
        bootMs: readyEvent ? readyEvent.atMs : null,
        durationMs: Date.now() - t0,
        qemuExitCode: code,
        qemuSignal: signal,
        qemuStderr: stderr,
      };
      emitter.emit('exit', finished);
      resolve(finished);
    };
    // An event listener's returned promise is dropped by the emitter; the one await in onClose is the tmp cleanup, which cannot reject.
    child.once('close', (code, signal) => void onClose(code, signal));
  });

  const waitFor = (match: string | ((e: GuestEvent) => boolean), timeoutMs?: number): Promise<GuestEvent> => {
    const pred = typeof match === 'string' ? (e: GuestEvent) => e.kind === 'step' && e.name === match : match;
    const seen = events.find(pred);
    if (seen) return Promise.resolve(seen);
    const what = typeof match === 'string' ? `step ${match}` : 'event';
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const cleanup = (): void => {
        emitter.off('event', onEvent);
        emitter.off('exit', onExit);
        if (timer) clearTimeout(timer);
      };
      const onEvent = (e: GuestEvent): void => {
        if (pred(e)) {
          cleanup();
          resolve(e);
        }
      };
      const onExit = (r: GuestResult): void => {
        cleanup();
        reject(new Error(`guest ended (${r.reason}, exit ${r.exitCode}) before ${what}\n${tail(r.console, 40)}`));
      };
      emitter.on('event', onEvent);
      emitter.on('exit', onExit);
      if (finished) onExit(finished);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${tail(consoleChunks.join(''), 40)}`));
        }, timeoutMs);
      }
    });
  };

  return {
    pid: child.pid ?? -1,
    emitter,
    wait: () => done,
    kill: () => {
      killedBy ??= 'killed';
      stop();
      return done;
    },
    send: (line: string) => {
      if (line.includes('\n')) throw new Error('send() takes one line');
      if (ready && ctlSock) writeControl(line);
      else pendingSend.push(line);
    },
    waitFor,
    waitForStep: async (name, timeoutMs, allowFail = false) => {
      const e = (await waitFor(name, timeoutMs)) as StepEvent;
      if (!allowFail && e.status !== 'ok') throw new Error(`guest step ${name} ${e.status}: ${e.detail}`);
      return e;
    },
    events: () => eventIterator(events, emitter),
    console: () => consoleChunks.join('').replace(/\r/g, ''),
    kernelLines: () => [...kernel],
  };
}

function eventIterator(past: GuestEvent[], emitter: EventEmitter): AsyncIterableIterator<GuestEvent> {
  let i = 0;
  let ended = false;
  let wake: (() => void) | null = null;
  const onEvent = (): void => wake?.();
  const onExit = (): void => {
    ended = true;
    wake?.();
  };
  emitter.on('event', onEvent);
  emitter.once('exit', onExit);
  const cleanup = (): void => {
    emitter.off('event', onEvent);
    emitter.off('exit', onExit);
  };
  const it: AsyncIterableIterator<GuestEvent> = {
    async next() {
      for (;;) {
        if (i < past.length) return { value: past[i++]!, done: false };
        if (ended) {
          cleanup();
          return { value: undefined, done: true };
        }
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    },
    async return() {
      cleanup();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

function extractDmesg(consoleText: string): string[] {
  const m = /^@@DMESG-BEGIN\n([\s\S]*?)^@@DMESG-END$/m.exec(consoleText);
  return m ? m[1]!.split('\n').filter((l) => l !== '') : [];
}

function tail(text: string, n: number): string {
  return text.replace(/\r/g, '').split('\n').slice(-n).join('\n');
}

// ------------------------------------------------------------------ CLI

function parseGuestFwd(s: string): GuestForward {
  const m = /^([\d.]+):(\d+)=(\d+)$/.exec(s);
  if (!m) throw new Error(`--guestfwd wants ADDR:PORT=HOSTPORT, got ${s}`);
  return { guestAddr: m[1]!, guestPort: Number(m[2]), hostPort: Number(m[3]) };
}

function parseHostFwd(s: string): HostForward {
  const m = /^(\d+)=(\d+)$/.exec(s);
  if (!m) throw new Error(`--hostfwd wants HOSTPORT=GUESTPORT, got ${s}`);
  return { hostPort: Number(m[1]), guestPort: Number(m[2]) };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      script: { type: 'string' },
      guestfwd: { type: 'string', multiple: true },
      hostfwd: { type: 'string', multiple: true },
      timeout: { type: 'string', default: '120' },
      fio: { type: 'boolean', default: false },
      mem: { type: 'string' },
      cpus: { type: 'string' },
      modules: { type: 'string' },
      log: { type: 'string' },
      dmesg: { type: 'boolean', default: false },
      kernel: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.script) {
    process.stderr.write(
      'usage: boot.ts --script FILE [--guestfwd 10.0.2.100:4420=4420]... [--hostfwd 14420=4420]...\n' +
        '               [--timeout SECS] [--fio] [--mem MB] [--cpus N] [--modules a,b] [--log FILE] [--dmesg]\n' +
        `               [--kernel ${RIG_KERNELS.join('|')}]\n` +
        'Boots the rig guest, runs FILE (busybox sh, /etc/rig.sh sourced), prints the console\n' +
        "(the final dmesg dump only with --dmesg) and exits with the script's status.\n",
    );
    return values.help ? 0 : 2;
  }
  if (values.kernel !== undefined && !isRigKernel(values.kernel)) throw new Error(`unknown kernel ${values.kernel} (known: ${RIG_KERNELS.join(', ')})`);
  let inDmesg = false;
  const run = await bootGuest({
    kernel: values.kernel,
    script: readFileSync(values.script, 'utf8'),
    guestfwd: (values.guestfwd ?? []).map(parseGuestFwd),
    hostfwd: (values.hostfwd ?? []).map(parseHostFwd),
    timeoutMs: Number(values.timeout) * 1000,
    withFio: values.fio,
    memMb: values.mem ? Number(values.mem) : undefined,
    cpus: values.cpus ? Number(values.cpus) : undefined,
    modules: values.modules !== undefined ? values.modules.split(',').filter(Boolean) : undefined,
    consoleLogPath: values.log,
    onConsoleLine: (line) => {
      if (line === '@@DMESG-BEGIN') inDmesg = true;
      if (values.dmesg || !inDmesg) process.stdout.write(line + '\n');
      if (line === '@@DMESG-END') inDmesg = false;
    },
  });
  run.emitter.on('control', (l: string) => process.stderr.write(`[ctl] ${l}\n`));
  const onSignal = (): void => void run.kill();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const r = await run.wait();
  process.stderr.write(`[boot] reason=${r.reason} exit=${r.exitCode} boot=${r.bootMs ?? '-'}ms total=${r.durationMs}ms\n`);
  if (r.reason === 'crashed' && r.qemuStderr) process.stderr.write(r.qemuStderr);
  return r.exitCode ?? 125;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`boot.ts: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(125);
    },
  );
}
