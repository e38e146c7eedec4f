// An SVG bar chart of each row's ratios to the kernel, per column, from an
// e2e result: one group of bars per column, one bar per row (weft's, and the
// other tunnels'), on a log scale around the 1x line (0.05x and 20x are as
// far from it), bars growing from it; the chart widens with the rows and the
// legend wraps. Pure (rows in, SVG text out); `npx tsx bench/ratio_chart.ts
// RESULT.json` writes RESULT.svg beside a result written before the bench
// drew charts.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ChartRow {
  readonly name: string;
  readonly engine: string;
  readonly ratios?: Readonly<Record<string, number>>;
}

/** The columns charted, with the direction in which a ratio is better. */
const COLUMNS: readonly { key: string; label: string; higherIsBetter: boolean }[] = [
  { key: 'tcp1Gbps', label: 'TCP 1 stream', higherIsBetter: true },
  { key: 'tcp4Gbps', label: 'TCP 4 streams', higherIsBetter: true },
  { key: 'udpRxPps', label: 'UDP 64 B pps', higherIsBetter: true },
  { key: 'pingAvgMs', label: 'ping RTT', higherIsBetter: false },
  { key: 'machineCpuSPerGB', label: 'CPU per GB', higherIsBetter: false },
];
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
/** Narrowest bar, so that its value label stays readable. */
const MIN_BAR_W = 24;
const LEGEND_ENTRY_W = 230;
const LEGEND_LINE_H = 16;

/** The hand-built kernel row every ratio is to (named `kernel`; `weft kernel` is weftd's kernel engine). */
export function isKernelReference(r: { readonly name: string }): boolean {
  return r.name === 'kernel';
}

export function chartTitle(date: string, cpu: string): string {
  return `each row vs the kernel's VXLAN-GPE (1x), ${date.slice(0, 16).replace('T', ' ')} UTC, ${cpu}`;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function ratioChart(rows: readonly ChartRow[], title: string): string {
  const shown = rows.filter((r) => !isKernelReference(r) && r.ratios);
  const span = 5; // log2: 1/32x .. 32x
  const left = 50, top = 40, plotH = 260;
  const W = Math.max(760, left + 20 + COLUMNS.length * (20 + MIN_BAR_W * shown.length));
  const perLine = Math.max(1, Math.floor((W - left) / LEGEND_ENTRY_W));
  const legendLines = Math.max(1, Math.ceil(shown.length / perLine));
  const legendTop = top + plotH + 44;
  const H = legendTop + legendLines * LEGEND_LINE_H;
  const groupW = (W - left - 20) / COLUMNS.length;
  const barW = (groupW - 20) / Math.max(1, shown.length);
  const y = (v: number): number => top + plotH / 2 - (Math.max(-span, Math.min(span, Math.log2(v))) / span) * (plotH / 2);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ];
  for (const t of [1 / 16, 1 / 4, 1 / 2, 1, 2, 4, 16]) {
    out.push(`<line x1="${left}" x2="${W - 20}" y1="${y(t)}" y2="${y(t)}" stroke="${t === 1 ? '#000' : '#ddd'}"${t === 1 ? ' stroke-dasharray="4 3"' : ''}/>`);
    out.push(`<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end">${t < 1 ? `1/${1 / t}` : t}x</text>`);
  }
  COLUMNS.forEach((c, ci) => {
    const gx = left + ci * groupW + 10;
    shown.forEach((r, ri) => {
      const v = r.ratios![c.key];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = gx + ri * barW;
      const [y0, y1] = [y(1), y(v)].sort((a, b) => a - b) as [number, number];
      out.push(`<rect x="${x.toFixed(1)}" y="${y0.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${Math.max(1, y1 - y0).toFixed(1)}" fill="${COLORS[ri % COLORS.length]}"><title>${esc(r.name)}: ${v.toFixed(2)}x</title></rect>`);
      out.push(`<text x="${(x + (barW - 2) / 2).toFixed(1)}" y="${(v >= 1 ? y0 - 3 : Math.min(y1 + 11, top + plotH + 4)).toFixed(1)}" text-anchor="middle" font-size="9">${v < 0.1 ? v.toFixed(3) : v.toFixed(2)}</text>`);
    });
    out.push(`<text x="${gx + (groupW - 20) / 2}" y="${top + plotH + 16}" text-anchor="middle">${esc(c.label)}</text>`);
    out.push(`<text x="${gx + (groupW - 20) / 2}" y="${top + plotH + 30}" text-anchor="middle" fill="#666">${c.higherIsBetter ? 'higher is better' : 'lower is better'}</text>`);
  });
  shown.forEach((r, ri) => {
    const lx = left + (ri % perLine) * LEGEND_ENTRY_W;
    const ly = legendTop + Math.floor(ri / perLine) * LEGEND_LINE_H;
    out.push(`<rect x="${lx}" y="${ly}" width="10" height="10" fill="${COLORS[ri % COLORS.length]}"/><text x="${lx + 14}" y="${ly + 9}">${esc(r.name)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: npx tsx bench/ratio_chart.ts bench/results/e2e-<date>.json');
  const result = JSON.parse(readFileSync(file, 'utf8')) as { date?: string; cpu?: string; rows: ChartRow[] };
  writeFileSync(file.replace(/\.json$/, '.svg'), ratioChart(result.rows, chartTitle(result.date ?? '', result.cpu ?? '')));
}
