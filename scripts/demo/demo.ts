/**
 * The demos: a target with two ports (active-standby, file store), a host
 * running a verified workload through its multipath head, and faults on a
 * timeline. Prints what happens as it happens (which path is active, the
 * I/O stall of each failover, errors) and writes an IOPS-over-time chart.
 *
 *   npm start                       the showcase: port down, port up, target crash and restart
 *   npm run demo -- port-down       one fault at a time: port-down, target-crash, blackhole, node-crash
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultConfigDocument } from '../../target/config/index.ts';
import type { TargetSnapshot } from '../../target/target.ts';
import { withFileNamespace, type ConfigDoc } from '../lib/config-doc.ts';
import { ROOT, freePort, startHostWorker, startTargetProcess, type TargetProcess, type WorkerEvent } from '../lib/processes.ts';
import { renderChart, type ChartMark, type ChartSample } from './chart.ts';
import { waitFor } from '../lib/wait.ts';

const NQN = 'nqn.2026-11.io.nvmets:array0';
const tty = process.stdout.isTTY === true;
const paint = (code: string, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const red = (s: string) => paint('31', s);
const green = (s: string) => paint('32', s);
const yellow = (s: string) => paint('33', s);
const dim = (s: string) => paint('2', s);
const bold = (s: string) => paint('1', s);

interface Step {
  readonly atMs: number;
  readonly label: string;
  readonly kind: ChartMark['kind'];
  run(ctx: Ctx, say: (what: string) => void): Promise<void>;
}
interface Ctx {
  target: TargetProcess;
  doc: unknown;
  dir: string;
  activePort(): Promise<number>;
}

async function activePort(t: TargetProcess): Promise<number> {
  const s = await t.ctl<TargetSnapshot>('show');
  return s.subsystems[0]!.paths.find((p) => p.active)?.portid ?? 1;
}

const portDown: (at: number) => Step = (at) => ({
  atMs: at,
  label: 'port down',
  kind: 'fault',
  run: async (c, say) => {
    const p = await c.activePort();
    (portDown as unknown as { last: number }).last = p;
    say(`port ${p} (the active one) down: listener closed, connections reset`);
    await c.target.ctl('port.down', { portid: p });
  },
});
const portUp: (at: number) => Step = (at) => ({
  atMs: at,
  label: 'port up',
  kind: 'recovery',
  run: async (c, say) => {
    const p = (portDown as unknown as { last?: number }).last ?? 1;
    say(`port ${p} up again: it returns as the standby path`);
    await c.target.ctl('port.up', { portid: p });
  },
});
const crash: (at: number) => Step = (at) => ({
  atMs: at,
  label: 'target crash',
  kind: 'fault',
  run: async (c, say) => {
    say('target process killed (SIGKILL): nothing flushed beyond what the file store persisted');
    await c.target.ctl('crash').catch(() => undefined);
    await c.target.exited;
  },
});
const restart: (at: number) => Step = (at) => ({
  atMs: at,
  label: 'target restart',
  kind: 'recovery',
  run: async (c, say) => {
    say('target restarting on the same ports and file store (its active path is the configured one, port 1)');
    c.target = await startTargetProcess(c.doc, { dir: c.dir, name: 'target' });
  },
});
const blackhole: (at: number, on: boolean) => Step = (at, on) => ({
  atMs: at,
  label: on ? 'blackhole' : 'blackhole cleared',
  kind: on ? 'fault' : 'recovery',
  run: async (c, say) => {
    const p = on ? await c.activePort() : ((blackhole as unknown as { last?: number }).last ?? 1);
    (blackhole as unknown as { last: number }).last = p;
    say(on ? `port ${p} blackholed: connections open, nothing answered (only keep-alive, kato 1 s, can tell)` : `port ${p} answers again`);
    await c.target.ctl('fault.blackhole', { portid: p, on });
  },
});

const SCENARIOS: Record<string, { title: string; runtimeMs: number; steps: Step[] }> = {
  showcase: {
    title: 'Showcase: port down, port up, target crash and restart',
    runtimeMs: 26_000,
    steps: [portDown(4000), portUp(9000), crash(14_000), restart(16_000)],
  },
  'port-down': { title: 'Port down and up', runtimeMs: 14_000, steps: [portDown(4000), portUp(9000)] },
  'target-crash': { title: 'Target crash and restart', runtimeMs: 14_000, steps: [crash(4000), restart(6500)] },
  blackhole: { title: 'Blackholed port (keep-alive detects it)', runtimeMs: 14_000, steps: [blackhole(4000, true), blackhole(9000, false)] },
};

function fmtT(ms: number): string {
  return `[${(ms / 1000).toFixed(1).padStart(5)}s]`;
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? 'showcase';
  const sc = SCENARIOS[name];
  if (!sc)
    throw new Error(
      `unknown demo "${name}" (showcase, ${Object.keys(SCENARIOS)
        .filter((k) => k !== 'showcase')
        .join(', ')})`,
    );

  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-demo-'));
  const ports = [await freePort(), await freePort()];
  const doc = defaultConfigDocument({ ports, sizeBytes: 256 * 2 ** 20 }) as ConfigDoc;
  withFileNamespace(doc, path.join(dir, 'ns1.img'), '256M');
  console.log(bold(sc.title));
  console.log(dim(`target: 127.0.0.1:${ports[0]} and :${ports[1]}, active-standby (port 1 active, implicit promotion), 256 MiB file store in ${dir}`));
  console.log(dim(`host:   both ports, one multipath head, verified 4 KiB randrw at QD8 (every block carries its LBA and a generation)`));
  console.log('');

  const ctx: Ctx = {
    target: await startTargetProcess(doc, { dir, name: 'target' }),
    doc,
    dir,
    activePort: () => activePort(ctx.target),
  };
  const worker = startHostWorker({
    ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })),
    subnqn: NQN,
    runtimeMs: sc.runtimeMs,
    katoMs: 1000,
    reconnectDelayMs: 250,
  });
  const samples: ChartSample[] = [];
  const marks: ChartMark[] = [];
  const failovers: number[] = [];
  let t0 = 0;
  let lastPrint = -1000;
  let window = { ios: 0, n: 0 };
  let finished = false;
  worker.on((e: WorkerEvent) => {
    if (e.type === 'result') finished = true;
    if (finished) return; // the session closing at the end is not part of the story
    if (e.type === 'connected') {
      t0 = performance.now() - e.atMs;
      console.log(`${fmtT(0)} ${green('HOST ')} connected: ${e.paths.map((p) => `${p.name} (${p.address.replace('tcp ', '')}) ${p.ana}`).join(', ')}`);
      return;
    }
    if (e.type === 'progress') {
      samples.push({ tMs: e.atMs, iops: e.iops });
      window = { ios: window.ios + e.iops, n: window.n + 1 };
      if (e.atMs - lastPrint >= 1000) {
        const iops = Math.round(window.ios / Math.max(1, window.n));
        const active = e.paths.find((p) => p.ana === 'optimized' && p.state === 'live')?.name ?? '-';
        const errs = e.errors + e.mismatches;
        console.log(
          dim(
            `${fmtT(e.atMs)} I/O   ${String(iops.toLocaleString('en-US')).padStart(7)} IOPS  active ${active.padEnd(10)} errors ${errs === 0 ? '0' : red(String(errs))}`,
          ),
        );
        lastPrint = e.atMs;
        window = { ios: 0, n: 0 };
      }
      return;
    }
    if (e.type === 'head') {
      const d = e.detail;
      // The head's event payloads are path names and reasons (strings), printed as they are.
      const s = (key: string): string => String(d[key]);
      if (e.event === 'failover-end') {
        failovers.push(Number(d['durationMs']));
        console.log(`${fmtT(e.atMs)} ${green('HOST ')} failover ${s('from')} -> ${s('to')}: I/O stalled ${bold(`${Number(d['durationMs']).toFixed(0)} ms`)}`);
      } else if (e.event === 'path-down') console.log(`${fmtT(e.atMs)} ${yellow('HOST ')} path ${s('path')} down (${s('reason')})`);
      else if (e.event === 'path-up') console.log(`${fmtT(e.atMs)} ${green('HOST ')} path ${s('path')} usable (${s('reason')})`);
      else if (e.event === 'failover-start') console.log(`${fmtT(e.atMs)} ${yellow('HOST ')} failover from ${s('from')} starts: ${s('reason')}`);
      else if (e.event === 'no-path')
        console.log(`${fmtT(e.atMs)} ${yellow('HOST ')} no usable path for now, I/O queued (${(d['paths'] as string[]).join('; ')})`);
    }
  });

  // The fault timeline, relative to the host's start.
  const timeline = (async () => {
    await waitFor(() => t0 !== 0, "the host worker's first event", 60_000, 20);
    for (const step of sc.steps) {
      const wait = t0 + step.atMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await step.run(ctx, (what) => {
        const at = performance.now() - t0;
        marks.push({ tMs: at, label: step.label, kind: step.kind });
        console.log(`${fmtT(at)} ${step.kind === 'fault' ? red('FAULT') : green('FIX  ')} ${what}`);
      });
    }
  })();

  const done = await worker.done;
  await timeline;
  await ctx.target.stop();
  const r = done.result;
  const out = path.join(ROOT, 'demo-output');
  mkdirSync(out, { recursive: true });
  const chartFile = path.join(out, `${name}.svg`);
  const stalls = failovers.length ? `failover stalls ${failovers.map((f) => `${f.toFixed(0)} ms`).join(', ')}` : 'no failover';
  writeFileSync(
    chartFile,
    renderChart({
      title: sc.title,
      subtitle: `${r.ios.toLocaleString('en-US')} verified I/Os, ${r.errors.length} errors, ${r.mismatches.length} mismatches; ${stalls}`,
      samples,
      marks,
      endMs: Math.max(r.elapsedMs, ...samples.map((s) => s.tMs)),
    }),
  );
  writeFileSync(
    path.join(out, `${name}.json`),
    JSON.stringify({ scenario: name, result: r, failoverStallsMs: failovers, counters: done.counters, marks }, null, 2),
  );
  const ok = r.errors.length === 0 && r.mismatches.length === 0;
  console.log('');
  console.log(bold('Result'));
  console.log(
    `  I/Os ${r.ios.toLocaleString('en-US')} (${r.reads.toLocaleString('en-US')} reads, ${r.writes.toLocaleString('en-US')} writes), ${Math.round(r.iops).toLocaleString('en-US')} IOPS on average`,
  );
  console.log(
    `  errors ${r.errors.length === 0 ? green('0') : red(String(r.errors.length))}, mismatches ${r.mismatches.length === 0 ? green('0') : red(String(r.mismatches.length))}, acknowledged blocks read back ${r.verifiedBlocks.toLocaleString('en-US')}`,
  );
  console.log(`  ${stalls}; longest gap with I/O outstanding ${r.maxStallMs.toFixed(0)} ms`);
  console.log(`  chart: ${chartFile}`);
  if (!ok) {
    for (const e of r.errors.slice(0, 5)) console.log(red(`  error at ${(e.atMs / 1000).toFixed(2)}s: ${e.op} ${e.slba}: ${e.message}`));
    for (const m of r.mismatches.slice(0, 5)) console.log(red(`  mismatch at LBA ${m.lba}: ${m.kind}`));
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
