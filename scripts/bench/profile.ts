/**
 * Summaries of V8 CPU profiles (.cpuprofile, as written by node --cpu-prof or
 * returned by the inspector's Profiler.stop): self time per function, top N.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idlePct: number;
  gcPct: number;
  top: { name: string; selfMs: number; selfPct: number }[];
}

function frameName(f: CallFrame): string {
  const file = f.url
    ? f.url
        .replace(/^file:\/\//, '')
        .replace(/^.*\/work\/main\//, '')
        .replace(/^.*\/node_modules\//, 'node_modules/')
    : '';
  return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
}

export function summarizeProfile(p: CpuProfile, topN = 25): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    total += dt;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + dt);
  }
  const pct = (ms: number) => (total > 0 ? (100 * ms) / total : 0);
  const idle = self.get('(idle)') ?? 0;
  const gc = self.get('(garbage collector)') ?? 0;
  const top = [...self.entries()]
    .filter(([n]) => n !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([name, ms]) => ({ name, selfMs: ms, selfPct: pct(ms) }));
  return { totalMs: total, idlePct: pct(idle), gcPct: pct(gc), top };
}
