/**
 * The bin/ wrappers (bin/lib/launch.js): the CLI runs as the wrapper's child
 * with the data-process settings, a signal sent to the wrapper reaches the
 * CLI, and the wrapper ends as the CLI ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MALLOC_TUNABLES, NODE_HEAP_FLAGS } from '../../bin/lib/launch.js';
import { ROOT } from '../../scripts/lib/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const started: number[] = [];
const dirs: string[] = [];

afterEach(() => {
  // Nothing outlives a test, whatever it asserted.
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The direct children of pid (every thread's list). */
const childrenOf = (pid: number): number[] =>
  readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));

const procStrings = (pid: number, file: 'environ' | 'cmdline'): string[] => readFileSync(`/proc/${pid}/${file}`, 'latin1').split('\0').filter(Boolean);

/** nvmets-target on ephemeral 127.0.0.1 ports, started through its wrapper; resolves once its control socket answers. */
async function startTargetWrapper(): Promise<{ wrapper: ChildProcess; cli: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-bin-'));
  dirs.push(dir);
  const control = path.join(dir, 'control.sock');
  const env = { ...process.env };
  delete env['GLIBC_TUNABLES'];
  const wrapper = spawn(
    process.execPath,
    [path.join(ROOT, 'bin/nvmets-target.js'), '--ports', '0,0', '--size', '1M', '--control', control, '--log-level', 'info'],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  started.push(wrapper.pid!);
  let output = '';
  wrapper.stdout.on('data', (d: Buffer) => (output += d.toString()));
  wrapper.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    wrapper.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // 'target ready' is logged in the same tick as the CLI installs its SIGINT/SIGTERM handlers.
  await waitFor(
    () => {
      if (wrapper.exitCode !== null || wrapper.signalCode !== null) throw new Error(`the wrapper exited during start: ${output}`);
      return output.includes('target ready');
    },
    'the target to be ready',
    20_000,
    20,
  );
  const kids = childrenOf(wrapper.pid!);
  expect(kids).toHaveLength(1);
  started.push(kids[0]!);
  return { wrapper, cli: kids[0]!, exited };
}

describe('bin/ wrappers', () => {
  it("nvmets-target: the CLI is the wrapper's child, started with the heap flag and the malloc tunables", async () => {
    const { wrapper, cli, exited } = await startTargetWrapper();
    const argv = procStrings(cli, 'cmdline');
    expect(argv).toEqual(expect.arrayContaining([...NODE_HEAP_FLAGS, path.join(ROOT, 'target/cli.ts'), '--ports', '0,0']));
    expect(argv.indexOf(NODE_HEAP_FLAGS[0]!)).toBeLessThan(argv.indexOf(path.join(ROOT, 'target/cli.ts')));
    // glibc rewrites GLIBC_TUNABLES in the process's own environ block once it has
    // read it (what /proc shows may end after the first tunable), so the check is
    // on what glibc kept: the first tunable, as set.
    const tunables = procStrings(cli, 'environ').find((l) => l.startsWith('GLIBC_TUNABLES='));
    expect(tunables).toBeDefined();
    expect(MALLOC_TUNABLES.startsWith(tunables!.slice('GLIBC_TUNABLES='.length))).toBe(true);
    expect(tunables).toContain('glibc.malloc.trim_threshold=268435456');
    wrapper.kill('SIGTERM');
    await exited;
  });

  it('SIGTERM to the wrapper stops the CLI (clean shutdown), and the wrapper exits with its code', async () => {
    const { wrapper, cli, exited } = await startTargetWrapper();
    expect(alive(cli)).toBe(true);
    wrapper.kill('SIGTERM');
    // The target's clean shutdown exits 0: the wrapper did not die of the signal itself.
    expect(await exited).toEqual({ code: 0, signal: null });
    await waitFor(() => !alive(cli), 'the CLI process to be gone', 5000, 20);
  });

  it('SIGHUP to the wrapper reaches the CLI (which has no handler and dies of it); the wrapper dies of the same signal', async () => {
    const { wrapper, cli, exited } = await startTargetWrapper();
    wrapper.kill('SIGHUP');
    expect(await exited).toEqual({ code: null, signal: 'SIGHUP' });
    await waitFor(() => !alive(cli), 'the CLI process to be gone', 5000, 20);
  });

  it("nvmets-ctl: the CLI's exit code and output come through; no data-process settings for a control client", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-bin-'));
    dirs.push(dir);
    const sock = path.join(dir, 'nobody.sock');
    const env = { ...process.env };
    delete env['GLIBC_TUNABLES'];
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [path.join(ROOT, 'bin/nvmets-ctl.js'), '--control', sock, 'show'], { stdio: ['ignore', 'ignore', 'pipe'], env });
      started.push(c.pid!);
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.once('exit', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the target's control endpoint ${sock}`);
  });
});
