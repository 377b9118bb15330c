/**
 * IOPS over time as a self-contained SVG, with the fault moments marked.
 */
export interface ChartSample {
  readonly tMs: number;
  readonly iops: number;
}
export interface ChartMark {
  readonly tMs: number;
  readonly label: string;
  readonly kind: 'fault' | 'recovery' | 'info';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function renderChart(opts: { title: string; subtitle: string; samples: ChartSample[]; marks: ChartMark[]; endMs: number }): string {
  const W = 1000;
  const H = 460;
  const L = 80;
  const R = 30;
  const T = 70;
  const B = 60;
  const pw = W - L - R;
  const ph = H - T - B;
  const maxY = niceMax(Math.max(1, ...opts.samples.map((s) => s.iops)) * 1.1);
  const x = (t: number) => L + (t / Math.max(1, opts.endMs)) * pw;
  const y = (v: number) => T + ph - (v / maxY) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${L}" y="30" font-size="20" font-weight="bold" fill="#222">${esc(opts.title)}</text>`);
  parts.push(`<text x="${L}" y="52" font-size="13" fill="#555">${esc(opts.subtitle)}</text>`);
  // Grid and axes.
  for (let i = 0; i <= 5; i++) {
    const v = (maxY / 5) * i;
    parts.push(`<line x1="${L}" x2="${L + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${L - 8}" y="${y(v) + 4}" font-size="12" text-anchor="end" fill="#444">${Math.round(v).toLocaleString('en-US')}</text>`);
  }
  const stepS = opts.endMs > 60_000 ? 10 : 5;
  for (let s = 0; s * 1000 <= opts.endMs; s += stepS) {
    parts.push(`<line x1="${x(s * 1000)}" x2="${x(s * 1000)}" y1="${T + ph}" y2="${T + ph + 5}" stroke="#444"/>`);
    parts.push(`<text x="${x(s * 1000)}" y="${T + ph + 20}" font-size="12" text-anchor="middle" fill="#444">${s}s</text>`);
  }
  parts.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" stroke="#444"/>`);
  parts.push(`<line x1="${L}" x2="${L + pw}" y1="${T + ph}" y2="${T + ph}" stroke="#444"/>`);
  parts.push(`<text x="${L + pw / 2}" y="${H - 15}" font-size="13" text-anchor="middle" fill="#333">time since start</text>`);
  parts.push(
    `<text x="20" y="${T + ph / 2}" font-size="13" text-anchor="middle" fill="#333" transform="rotate(-90 20 ${T + ph / 2})">IOPS (verified 4 KiB randrw)</text>`,
  );
  // Fault marks behind the line.
  const colors = { fault: '#d62728', recovery: '#2ca02c', info: '#1f77b4' } as const;
  opts.marks.forEach((m, i) => {
    const mx = x(m.tMs);
    parts.push(`<line x1="${mx}" x2="${mx}" y1="${T}" y2="${T + ph}" stroke="${colors[m.kind]}" stroke-width="1.5" stroke-dasharray="5,4"/>`);
    const ly = T + 14 + (i % 4) * 16;
    parts.push(`<text x="${mx + 4}" y="${ly}" font-size="12" fill="${colors[m.kind]}">${esc(m.label)}</text>`);
  });
  // The IOPS line.
  if (opts.samples.length) {
    const d = opts.samples.map((s, i) => `${i ? 'L' : 'M'}${x(s.tMs).toFixed(1)},${y(s.iops).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="#222" stroke-width="2"/>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}
