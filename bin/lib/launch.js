// How every CLI of the package is started, in one place: the bin/ wrappers and
// the npm scripts (target, host, bench) run through launch(), and
// scripts/lib/processes.ts takes the same settings for the processes it spawns.
//
// The CLI runs as a child `node --import tsx SCRIPT` (tsx is a runtime
// dependency, so the package needs no build step). The wrapper stays in front
// of it: a signal sent to the wrapper's pid (SIGINT, SIGTERM, SIGHUP) is passed
// on, and the wrapper ends the way the CLI ended (same exit code, or killed by
// the same signal), so `kill <pid>` on either stops both and shells see the
// CLI's status.
//
//   node bin/lib/launch.js [--data-process] SCRIPT [ARGS...]   (SCRIPT relative to the repository root)
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * V8 heap settings for processes that move data (target, host, host workers,
 * the bench and its raw baseline server). With V8's default starting limit for
 * the old generation (a few MB above a ~10 MB live heap) every socket read (a
 * fresh 64 KiB ArrayBuffer from Node) kept incremental marking going: a
 * mark-compact every ~12 ms at 1 GB/s, 25-40 % of the target's time. A 64 MiB
 * starting limit ends that (trace-gc: 238 -> 8 mark-compacts per 4 s of
 * 128 KiB writes); it is a limit, not an allocation.
 */
export const NODE_HEAP_FLAGS = Object.freeze(['--initial-old-space-size=64']);

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
 * other than glibc. glibc reads it once, at exec: it has to be in the
 * environment the process starts with.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=1048576';

/**
 * `env` plus MALLOC_TUNABLES in GLIBC_TUNABLES: appended to tunables the caller
 * set, unless the caller already chose malloc thresholds of its own.
 * @param {NodeJS.ProcessEnv} env
 * @param {Record<string, string>} [extra]
 * @returns {NodeJS.ProcessEnv}
 */
export function dataProcessEnv(env = process.env, extra = {}) {
  const own = env.GLIBC_TUNABLES;
  return { ...env, GLIBC_TUNABLES: own && !own.includes('glibc.malloc.trim_threshold') ? `${own}:${MALLOC_TUNABLES}` : (own ?? MALLOC_TUNABLES), ...extra };
}

/** The loader, by absolute URL: the wrappers may be run from any directory. */
export const TSX_LOADER = import.meta.resolve('tsx');

/** Signals a wrapper passes on to its CLI. */
export const FORWARDED_SIGNALS = Object.freeze(['SIGINT', 'SIGTERM', 'SIGHUP']);

/**
 * Runs SCRIPT (a path relative to the repository root) as a child process with
 * ARGS, forwards FORWARDED_SIGNALS to it, and ends this process as the child
 * ended. `dataProcess` adds NODE_HEAP_FLAGS and MALLOC_TUNABLES.
 * @param {string} script
 * @param {readonly string[]} args
 * @param {{ dataProcess?: boolean }} [opts]
 * @returns {import('node:child_process').ChildProcess}
 */
export function launch(script, args, opts = {}) {
  const dataProcess = opts.dataProcess ?? false;
  const nodeArgs = [...(dataProcess ? NODE_HEAP_FLAGS : []), '--import', TSX_LOADER, path.resolve(ROOT, script), ...args];
  const child = spawn(process.execPath, nodeArgs, { stdio: 'inherit', env: dataProcess ? dataProcessEnv() : process.env });
  // A terminal's Ctrl-C reaches the child as well (same process group), so it
  // may see SIGINT twice; the CLIs treat a second one within a second as the
  // same request (host/cli.ts, target/cli.ts).
  const forward = (/** @type {NodeJS.Signals} */ signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const s of FORWARDED_SIGNALS) process.on(s, forward);
  child.once('error', (err) => {
    process.stderr.write(`${path.basename(script)}: cannot start node: ${err.message}\n`);
    process.exit(127);
  });
  child.once('exit', (code, signal) => {
    for (const s of FORWARDED_SIGNALS) process.off(s, forward);
    if (signal) {
      // Die of the same signal (its default action now that our handler is gone), so the caller sees it.
      process.kill(process.pid, signal);
      // A signal whose default action does not end a process: report it as shells do.
      setTimeout(() => process.exit(128 + (os.constants.signals[signal] ?? 0)), 1000);
      return;
    }
    process.exit(code ?? 1);
  });
  return child;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const dataProcess = argv[0] === '--data-process';
  if (dataProcess) argv.shift();
  const [script, ...args] = argv;
  if (!script) {
    process.stderr.write('usage: node bin/lib/launch.js [--data-process] SCRIPT [ARGS...]\n');
    process.exit(2);
  }
  launch(script, args, { dataProcess });
}
