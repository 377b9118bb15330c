/**
 * What an end-to-end run started, written down as it happens, so the run's
 * global teardown can make sure nothing is left behind even when a test file
 * died half-way: process ids of target processes, host workers and etcd
 * (killed by id if still alive and still ours) and network namespaces
 * (deleted if they still exist). Also the scenario figures, one JSON line
 * each, for the summary table.
 *
 * The run directory is chosen by the global setup (scripts/e2e/global-setup.ts)
 * and handed to every test file; without one (a helper used on its own)
 * nothing is recorded.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

let runDir: string | null = null;

export function useRunDir(dir: string | null | undefined): void {
  runDir = dir ?? null;
}

export function currentRunDir(): string | null {
  return runDir;
}

function append(file: string, line: string): void {
  if (runDir) appendFileSync(path.join(runDir, file), `${line}\n`);
}

export function registerPid(pid: number, kind: string): void {
  append('pids', `${pid} ${kind}`);
}

export function registerNetns(name: string): void {
  append('netns', name);
}

/** One scenario's figures (see test/e2e/harness.ts ScenarioFigures). */
export function recordFigures(figures: object): void {
  append('results.jsonl', JSON.stringify(figures));
}

export function readFigures<T>(dir: string): T[] {
  const f = path.join(dir, 'results.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

function lines(dir: string, file: string): string[] {
  const f = path.join(dir, file);
  return existsSync(f)
    ? readFileSync(f, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
    : [];
}

/** Is this pid alive and one of our node processes (not a reused pid)? */
function ours(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('target/cli.ts') || cmdline.includes('verified-io-worker.ts') || cmdline.includes('nvmets-etcd-');
  } catch {
    return false;
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`) || existsSync(`/var/run/netns/${name}`);
}

/** Kill leftover processes (by id) and delete leftover namespaces of a run; returns what it had to clean. */
export function sweep(dir: string): { pids: number[]; netns: string[] } {
  const left = { pids: [] as number[], netns: [] as string[] };
  for (const l of lines(dir, 'pids')) {
    const pid = Number(l.split(' ')[0]);
    if (Number.isInteger(pid) && pid > 1 && ours(pid)) {
      left.pids.push(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }
  for (const name of new Set(lines(dir, 'netns'))) {
    if (!netnsExists(name)) continue;
    left.netns.push(name);
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      /* reported by the caller through left.netns */
    }
  }
  return left;
}
