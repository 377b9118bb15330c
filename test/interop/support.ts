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
import { freePort, imageDirFor, rigAvailable, type RigKernel } from '../../scripts/interop/boot.ts';
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
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .filter((l) => !/^\[\s*\d+\.\d+\]/.test(l))
    .join('\n');
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

/** Console lines around a failing step, for the failure message. */
export function relevantConsole(consoleText: string, around: string, context = 25): string {
  const lines = consoleText.split(/\r?\n/);
  const i = lines.findIndex((l) => l.includes(around));
  if (i < 0) return lines.slice(-context * 2).join('\n');
  return lines.slice(Math.max(0, i - context), i + context).join('\n');
}
