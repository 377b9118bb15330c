#!/usr/bin/env -S npx tsx
/**
 * The long form of the target fuzzer (the CI short form is test/fuzz/fuzz.test.ts; the engine is scripts/lib/fuzz/).
 *
 *   npx tsx scripts/fuzz.ts --inputs 1000000 --seconds 900 --seed 42
 *   npx tsx scripts/fuzz.ts --seed 42 --replay 123456        # one input again, alone
 *
 * Invariants (healthy pair, connections, controllers, RSS, target log) are
 * checked after every batch (--batch, default 1000 inputs).
 *
 * Stops at --inputs or --seconds, whichever comes first, and prints progress
 * lines, per-class counts, the failures with their reproduction command, and
 * one final summary line. Exit code 0 when nothing failed, 1 otherwise, 2 for
 * bad arguments.
 */
import { randomBytes } from 'node:crypto';
import { formatReport, runFuzz } from './lib/fuzz/engine.ts';

function usage(problem?: string): never {
  if (problem) process.stderr.write(`fuzz: ${problem}\n`);
  process.stderr.write(
    'usage: npx tsx scripts/fuzz.ts [--inputs N] [--seconds S] [--seed X] [--replay I[,I...]] [--batch B] [--concurrency C] [--rss-limit-mb M]\n',
  );
  process.exit(2);
}

function intArg(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min || n > max) usage(`--${name}: expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

const args = process.argv.slice(2);
let inputs = 1_000_000;
let seconds = 900;
let seed = randomBytes(4).toString('hex');
let replay: number[] | undefined;
let concurrency: number | undefined;
let batch: number | undefined;
let rssLimitMb: number | undefined;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const v = args[i + 1];
  switch (a) {
    case '--inputs':
      inputs = intArg('inputs', v, 1, 1e9);
      i++;
      break;
    case '--seconds':
      seconds = intArg('seconds', v, 1, 7 * 24 * 3600);
      i++;
      break;
    case '--seed':
      if (!v) usage('--seed needs a value');
      seed = v;
      i++;
      break;
    case '--replay':
      if (!v || !/^\d+(,\d+)*$/.test(v)) usage('--replay: expected input indexes, comma separated');
      replay = v.split(',').map(Number);
      i++;
      break;
    case '--batch':
      batch = intArg('batch', v, 1, 100_000);
      i++;
      break;
    case '--concurrency':
      concurrency = intArg('concurrency', v, 1, 512);
      i++;
      break;
    case '--rss-limit-mb':
      rssLimitMb = intArg('rss-limit-mb', v, 64, 1 << 20);
      i++;
      break;
    case '-h':
    case '--help':
      usage();
      break;
    default:
      usage(`unknown argument ${a}`);
  }
}

const report = await runFuzz({
  seed,
  inputs,
  seconds,
  only: replay,
  concurrency,
  batch,
  rssLimitMb,
  progressEveryMs: 10_000,
  maxFailures: replay ? 1000 : 200,
  log: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`${formatReport(report)}\n`);
process.exit(report.failureCount === 0 ? 0 : 1);
