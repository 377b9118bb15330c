/**
 * Soak: a verified randrw workload through the multipath head for a bounded
 * time while a chaos loop flaps ports, blackholes the active one, moves the
 * active path, and crashes and restarts the target (file store). At the end:
 * zero mismatches, zero lost acknowledged writes, zero errors, memory and file
 * descriptors within bounds; prints the faults survived.
 *
 *   npm run soak -- --seconds 600 [--seed 1]      (long form)
 *   (test/soak/soak.test.ts runs a short form in CI)
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultConfigDocument } from '../target/config/index.ts';
import type { TargetSnapshot } from '../target/target.ts';
import { withFileNamespace, type ConfigDoc } from './lib/config-doc.ts';
import { freePort, startHostWorker, startTargetProcess, type TargetProcess, type WorkerEvent } from './lib/processes.ts';
import { Rng } from './lib/rng.ts';

export interface SoakReport {
  seconds: number;
  seed: number;
  faults: Record<string, number>;
  ios: number;
  errors: number;
  mismatches: number;
  verifiedBlocks: number;
  failovers: number;
  maxStallMs: number;
  host: { rssStartMb: number; rssEndMb: number; rssMaxMb: number; fdsStart: number; fdsEnd: number; fdsMax: number };
  target: { rssMaxMb: number; fdsMax: number; restarts: number };
  problems: string[];
}

function procStat(pid: number): { rssMb: number; fds: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { rssMb: rssKb / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rssMb: 0, fds: 0 };
  }
}

export async function soak(opts: { seconds: number; seed?: number; log?: (line: string) => void }): Promise<SoakReport> {
  const log = opts.log ?? (() => undefined);
  const seed = opts.seed ?? 1;
  const rng = new Rng(seed);
  const rand = () => rng.float();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-soak-'));
  const ports = [await freePort(), await freePort()];
  const doc = defaultConfigDocument({ ports, sizeBytes: 128 * 2 ** 20 }) as ConfigDoc;
  withFileNamespace(doc, path.join(dir, 'ns1.img'), '128M');
  let target: TargetProcess = await startTargetProcess(doc, { dir, name: 'target', logLevel: 'warn' });
  const worker = startHostWorker({
    ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })),
    subnqn: 'nqn.2026-11.io.nvmets:array0',
    runtimeMs: opts.seconds * 1000,
    katoMs: 1000,
    reconnectDelayMs: 200,
    ctrlLossTmoMs: 120_000,
    progressMs: 1000,
  });
  const samples: { rss: number; fds: number }[] = [];
  const targetMax = { rssMb: 0, fds: 0 };
  let failovers = 0;
  worker.on((e: WorkerEvent) => {
    if (e.type === 'progress') {
      samples.push({ rss: e.rss, fds: e.fds });
      const t = procStat(target.pid);
      targetMax.rssMb = Math.max(targetMax.rssMb, t.rssMb);
      targetMax.fds = Math.max(targetMax.fds, t.fds);
      if (samples.length % 10 === 0)
        log(
          `[${(e.atMs / 1000).toFixed(0)}s] ${e.ios} I/Os, errors ${e.errors}, mismatches ${e.mismatches}, host RSS ${(e.rss / 2 ** 20).toFixed(0)} MB, fds ${e.fds}`,
        );
    }
    if (e.type === 'head' && e.event === 'failover-end') failovers++;
  });
  const faults: Record<string, number> = { 'port-flap': 0, blackhole: 0, 'active-switch': 0, 'crash-restart': 0 };
  let restarts = 0;
  const deadline = Date.now() + opts.seconds * 1000 - 3000;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const active = async () => (await target.ctl<TargetSnapshot>('show')).subsystems[0]!.paths.find((p) => p.active)?.portid ?? 1;
  await sleep(1500);
  const chaos = (async () => {
    while (Date.now() < deadline) {
      const pick = rand();
      try {
        if (pick < 0.35) {
          const p = await active();
          await target.ctl('port.down', { portid: p });
          await sleep(200 + rand() * 400);
          await target.ctl('port.up', { portid: p });
          faults['port-flap']!++;
        } else if (pick < 0.55) {
          const p = await active();
          await target.ctl('fault.blackhole', { portid: p, on: true });
          await sleep(1500);
          await target.ctl('fault.blackhole', { portid: p, on: false });
          faults['blackhole']!++;
        } else if (pick < 0.85) {
          const p = await active();
          await target.ctl('active.set', { nsid: 1, portid: p === 1 ? 2 : 1 });
          faults['active-switch']!++;
        } else {
          await target.ctl('crash').catch(() => undefined);
          await target.exited;
          await sleep(300 + rand() * 500);
          target = await startTargetProcess(doc, { dir, name: 'target', logLevel: 'warn' });
          restarts++;
          faults['crash-restart']!++;
        }
      } catch (err) {
        log(`chaos step failed: ${(err as Error).message}`);
      }
      await sleep(800 + rand() * 1200);
    }
  })();
  const done = await worker.done;
  await chaos;
  await target.stop();
  const r = done.result;
  const head = samples.slice(0, Math.min(5, samples.length));
  const rssStart = head.length ? Math.min(...head.map((s) => s.rss)) : 0;
  const report: SoakReport = {
    seconds: opts.seconds,
    seed,
    faults,
    ios: r.ios,
    errors: r.errors.length,
    mismatches: r.mismatches.length,
    verifiedBlocks: r.verifiedBlocks,
    failovers,
    maxStallMs: Math.round(r.maxStallMs),
    host: {
      rssStartMb: Math.round(rssStart / 2 ** 20),
      rssEndMb: Math.round((samples.at(-1)?.rss ?? 0) / 2 ** 20),
      rssMaxMb: Math.round(Math.max(0, ...samples.map((s) => s.rss)) / 2 ** 20),
      fdsStart: head.length ? Math.min(...head.map((s) => s.fds)) : 0,
      fdsEnd: samples.at(-1)?.fds ?? 0,
      fdsMax: Math.max(0, ...samples.map((s) => s.fds)),
    },
    target: { rssMaxMb: Math.round(targetMax.rssMb), fdsMax: targetMax.fds, restarts },
    problems: [],
  };
  if (report.errors) report.problems.push(`${report.errors} application errors (first: ${r.errors[0]?.message})`);
  if (report.mismatches) report.problems.push(`${report.mismatches} mismatches (first: ${JSON.stringify(r.mismatches[0])})`);
  if (!report.verifiedBlocks) report.problems.push('no acknowledged block was read back');
  // Bounds: the host must not grow without limit across faults.
  if (report.host.rssMaxMb > report.host.rssStartMb + 256) report.problems.push(`host RSS grew from ${report.host.rssStartMb} to ${report.host.rssMaxMb} MB`);
  if (report.host.fdsMax > report.host.fdsStart + 32) report.problems.push(`host fds grew from ${report.host.fdsStart} to ${report.host.fdsMax}`);
  if (report.target.rssMaxMb > 512) report.problems.push(`target RSS reached ${report.target.rssMaxMb} MB`);
  if (report.target.fdsMax > 128) report.problems.push(`target fds reached ${report.target.fdsMax}`);
  return report;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const seconds = arg('seconds', 120);
  const seed = arg('seed', 1);
  if (!Number.isFinite(seconds) || seconds < 10 || seconds > 86_400) {
    console.error('--seconds must be between 10 and 86400');
    process.exit(2);
  }
  console.log(`soak: ${seconds} s, seed ${seed}`);
  const report = await soak({ seconds, seed, log: (l) => console.log(l) });
  console.log(JSON.stringify(report, null, 2));
  console.log(
    `soak: ${report.ios} verified I/Os, faults survived ${Object.entries(report.faults)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}, errors ${report.errors}, mismatches ${report.mismatches}`,
  );
  process.exitCode = report.problems.length ? 1 : 0;
}
