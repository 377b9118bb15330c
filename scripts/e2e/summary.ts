/**
 * The figures of an end-to-end run as one table. The global teardown of the
 * e2e suite prints it after the run; `npx tsx scripts/e2e/summary.ts [RUN_DIR]`
 * prints it again (default: the last run, whose directory is named in
 * $TMPDIR/nvmets-e2e-last-run).
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFigures } from './registry.ts';

/** One scenario's measured figures (written by test/e2e/harness.ts). */
export interface ScenarioFigures {
  readonly name: string;
  readonly ios: number;
  readonly errors: number;
  readonly mismatches: number;
  readonly verifiedBlocks: number;
  readonly failovers: number;
  /** durationMs of every failover-end event of the head. */
  readonly failoverMs: number[];
  /** Every I/O stall of the workload (no completion for > 50 ms with I/O outstanding). */
  readonly stallsMs: number[];
  readonly stallP50Ms: number;
  readonly stallMaxMs: number;
  /** Wall time of the scenario, set-up and teardown included. */
  readonly wallMs: number;
  readonly note: string;
}

export const LAST_RUN_POINTER = path.join(os.tmpdir(), 'nvmets-e2e-last-run');

export function p50(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** The one line each scenario prints. */
export function scenarioLine(f: ScenarioFigures): string {
  const fo = f.failoverMs.length
    ? `; failover-end ms: ${f.failoverMs.length <= 12 ? f.failoverMs.join(', ') : `p50 ${p50(f.failoverMs)}, max ${Math.max(...f.failoverMs)} (${f.failoverMs.length})`}`
    : '';
  return (
    `scenario ${f.name}: ios ${f.ios}, errors ${f.errors}, mismatches ${f.mismatches}, failovers ${f.failovers}, ` +
    `stall p50/max ${Math.round(f.stallP50Ms)}/${Math.round(f.stallMaxMs)} ms (${f.stallsMs.length} stalls${fo})`
  );
}

export function formatTable(figs: readonly ScenarioFigures[]): string {
  const head = ['scenario', 'ios', 'errors', 'mismatches', 'verified blocks', 'failovers', 'failover-end p50/max ms', 'stalls', 'stall p50/max ms', 'wall s'];
  const rows = figs.map((f) => [
    f.name,
    String(f.ios),
    String(f.errors),
    String(f.mismatches),
    String(f.verifiedBlocks),
    String(f.failovers),
    f.failoverMs.length ? `${p50(f.failoverMs)}/${Math.max(...f.failoverMs)}` : '-',
    String(f.stallsMs.length),
    `${Math.round(f.stallP50Ms)}/${Math.round(f.stallMaxMs)}`,
    (f.wallMs / 1000).toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  const notes = figs.filter((f) => f.note).map((f) => `  ${f.name}: ${f.note}`);
  return [line(head), sep, ...rows.map(line), ...(notes.length ? ['', 'notes:', ...notes] : [])].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? (existsSync(LAST_RUN_POINTER) ? readFileSync(LAST_RUN_POINTER, 'utf8').trim() : '');
  if (!dir) {
    console.error('no run directory given and no last run recorded');
    process.exit(1);
  }
  console.log(formatTable(readFigures<ScenarioFigures>(dir)));
}
