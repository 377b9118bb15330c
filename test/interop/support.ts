/**
 * Shared pieces of the interop tests: our target as a separate process with its
 * control CLI, console blocks printed by guest scripts, and the kernel-log check.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { findImage, freePort, imageDirFor, rigAvailable, type RigKernel } from '../../scripts/interop/boot.ts';
import { waitFor } from '../helpers/wait.ts';

const execFileP = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

export function requireRig(kernel: RigKernel = '6.1'): void {
  if (!rigAvailable(kernel))
    throw new Error(
      `the interop rig for Linux ${kernel} is not built (no image in ${imageDirFor(kernel)}): run \`scripts/interop/build.sh ${kernel}\` as root`,
    );
}

export interface TargetProcess {
  readonly ports: [number, number];
  readonly control: string;
  readonly dir: string;
  readonly log: () => string;
  ctl(...args: string[]): Promise<string>;
  show(): Promise<ShowJson>;
  stop(): Promise<void>;
}

export interface ShowJson {
  ports: { portid: number; state: string; listen: string }[];
  subsystems: {
    nqn: string;
    paths: { portid: number; grpid: number; state: string; active: boolean | null }[];
    controllers: { cntlid: number; portid: number; hostnqn: string }[];
  }[];
}

/** Start `target/cli.ts` with a config document (edited copy of the defaults). */
export async function startTargetProcess(makeDoc: (ports: [number, number]) => unknown): Promise<TargetProcess> {
  const ports: [number, number] = [await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-interop-'));
  const config = path.join(dir, 'target.json');
  const control = path.join(dir, 'control.sock');
  writeFileSync(config, JSON.stringify(makeDoc(ports), null, 2));
  let output = '';
  const child: ChildProcess = spawn(TSX, [path.join(ROOT, 'target/cli.ts'), '--config', config, '--control', control, '--log-level', 'info'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = () => {
    if (child.exitCode !== null) throw new Error(`target exited during start:\n${output}`);
    return output.includes('target ready');
  };
  await waitFor(ready, 'the target to start', 30_000, 100).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}:\n${output}`);
  });
  const ctl = async (...args: string[]): Promise<string> => {
    const { stdout } = await execFileP(TSX, [path.join(ROOT, 'target/ctl-cli.ts'), '--control', control, ...args], { cwd: ROOT });
    return stdout;
  };
  return {
    ports,
    control,
    dir,
    log: () => output,
    ctl,
    show: async () => JSON.parse(await ctl('--json', 'show')) as ShowJson,
    stop: async () => {
      writeFileSync(path.join(dir, 'target.log'), output);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  };
}

/** Text a guest script printed between `@@BEGIN name` and `@@END name`. */
export function block(consoleText: string, name: string): string {
  const lines = consoleText.split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === `@@BEGIN ${name}`);
  if (start < 0) return '';
  const end = lines.findIndex((l, i) => i > start && l.trim() === `@@END ${name}`);
  return (
    lines
      .slice(start + 1, end < 0 ? undefined : end)
      // Kernel lines and the rig's own echo (`#ctl guest> ...`, `[rig] ...`) interleave with the script's output.
      .filter((l) => !/^\[\s*\d+\.\d+\]/.test(l) && !l.startsWith('#ctl ') && !l.startsWith('[rig] '))
      .join('\n')
  );
}

export function jsonBlock<T>(consoleText: string, name: string): T {
  const text = block(consoleText, name);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`guest block "${name}" is not JSON:\n${text.slice(0, 2000)}`);
  }
}

/** Kernel lines (dmesg) that report an nvme problem, outside the windows the test caused. */
export function unexpectedNvmeErrors(dmesg: string[], faultWindows: [string, string][]): string[] {
  const bad = /nvme.*(error|bad type|IDs don't match|timeout|reset|failed|fail|I\/O \d+ QID|reconnect|Invalid|TermReq|unexpected|WARNING|BUG)/i;
  const out: string[] = [];
  let inWindow = false;
  for (const line of dmesg) {
    for (const [start, end] of faultWindows) {
      if (line.includes(start)) inWindow = true;
      if (line.includes(end)) inWindow = false;
    }
    if (!inWindow && bad.test(line)) out.push(line);
    if (/(Oops|BUG:|WARNING:|Call Trace)/.test(line)) out.push(line);
  }
  return [...new Set(out)];
}

/**
 * What Linux's host logs while one of its paths is down and comes back: each
 * kernel's wording (6.1: `Failed reconnect attempt 3`, `bad type returned 0`;
 * 6.12 and 7.2: `Failed reconnect attempt 3/60`, `failed to receive icresp,
 * error -104`; now and then `queue 1 socket state 11`, seen on 7.2). Any other nvme line
 * inside a fault window is a finding.
 */
const PATH_RECOVERY_LINES = [
  /nvme nvme\d+: starting error recovery$/,
  /nvme nvme\d+: Reconnecting in \d+ seconds\.\.\.$/,
  /nvme nvme\d+: Failed reconnect attempt \d+(\/\d+)?$/,
  /nvme nvme\d+: Successfully reconnected \((attempt \d+\/\d+|\d+ attempt)\)$/,
  /nvme nvme\d+: creating \d+ I\/O queues\.$/,
  /nvme nvme\d+: mapped \d+\/\d+\/\d+ default\/read\/poll queues\.$/,
  /nvme_tcp: queue 0: bad type returned 0$/,
  /nvme_tcp: queue 0: failed to receive icresp, error -104$/,
  /block nvme\d+n\d+: no usable path - requeuing I\/O$/,
  // nvme_tcp_state_change on a socket state it does not act on (11, TCP_CLOSING, when the port's close crosses the host's).
  /nvme nvme\d+: queue \d+ socket state \d+$/,
];

/** The nvme lines the kernel logged between two marks, split into the known path-recovery lines and the rest. */
export function faultWindowLines(dmesg: string[], [start, end]: [string, string]): { known: string[]; unknown: string[] } {
  const known: string[] = [];
  const unknown: string[] = [];
  let inWindow = false;
  for (const raw of dmesg) {
    if (raw.includes(start)) inWindow = true;
    if (raw.includes(end)) inWindow = false;
    const line = raw.replace(/^\[\s*\d+\.\d+\]\s*/, '').trim();
    if (!inWindow || !/nvme/.test(line) || line.includes('@@MARK')) continue;
    (PATH_RECOVERY_LINES.some((re) => re.test(line)) ? known : unknown).push(line);
  }
  return { known, unknown };
}

/** A kernel's nvme-cli as [major, minor], from its image's package list (Debian `2.13-2` gives [2, 13]). */
export function nvmeCliVersion(kernel: RigKernel): [number, number] {
  const v = findImage(undefined, kernel)?.manifest.packages['nvme-cli'];
  const m = v === undefined ? null : /^(?:\d+:)?(\d+)\.(\d+)/.exec(v);
  if (!m) throw new Error(`no nvme-cli version in the ${kernel} image's manifest (${String(v)})`);
  return [Number(m[1]), Number(m[2])];
}

export function atLeast([major, minor]: [number, number], wantMajor: number, wantMinor: number): boolean {
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

export interface ListSubsysText {
  nqn: string;
  /** `hostnqn=` under the subsystem (nvme-cli 2.13 on; 2.3 has no such line). */
  hostnqn: string | null;
  /** `iopolicy=` under the subsystem (2.16 prints it, 2.13 does not). */
  iopolicy: string | null;
  paths: { name: string; transport: string; address: Record<string, string>; state: string; ana: string }[];
}

/** The text form of `nvme list-subsys <dev>` (one subsystem), as nvme-cli 2.3, 2.13 and 2.16 print it. */
export function parseListSubsysText(text: string): ListSubsysText {
  const lines = text.split(/\r?\n/).filter((l) => !/^\[\s*\d+\.\d+\]/.test(l));
  const head = lines.map((l) => /^nvme-subsys\d+ - NQN=(\S+)/.exec(l)).find((m) => m !== null);
  if (!head) throw new Error(`no "nvme-subsysN - NQN=" line in:\n${text}`);
  const attr = (name: string): string | null => lines.map((l) => new RegExp(`^\\s+${name}=(\\S+)\\s*$`).exec(l)).find((m) => m !== null)?.[1] ?? null;
  const paths = lines
    .map((l) => /^\s*\+- (nvme\d+) (\S+) (\S+) (\S+) (\S+)\s*$/.exec(l))
    .filter((m) => m !== null)
    .map(([, name, transport, address, state, ana]) => ({
      name: name!,
      transport: transport!,
      address: Object.fromEntries(address!.split(',').map((kv) => kv.split('=') as [string, string])),
      state: state!,
      ana: ana!,
    }));
  return { nqn: head[1]!, hostnqn: attr('hostnqn'), iopolicy: attr('iopolicy'), paths };
}

/** Console lines around a failing step, for the failure message. */
export function relevantConsole(consoleText: string, around: string, context = 25): string {
  const lines = consoleText.split(/\r?\n/);
  const i = lines.findIndex((l) => l.includes(around));
  if (i < 0) return lines.slice(-context * 2).join('\n');
  return lines.slice(Math.max(0, i - context), i + context).join('\n');
}
