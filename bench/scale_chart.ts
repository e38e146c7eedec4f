// An SVG chart of the weftd part of bench/scale.ts against the node count:
// three panels (time to a full mesh; each weftd's CPU seconds; its RSS),
// each a line per series through one point per N, on linear axes from 0.
// Pure (rows in, SVG text out).

export interface NodeRow {
  readonly nodes: number;
  /** From the last start to every weftd ready. */
  readonly allReadyMs: number;
  /** From the last start to every weftd's table holding the N-1 others. */
  readonly meshMs: number;
  /** From the first weftd's spawn to the last's. */
  readonly spawnMs: number;
  readonly weftdCpuS: { readonly median: number; readonly max: number };
  readonly weftdRssMB: { readonly median: number; readonly max: number };
  readonly etcdPeakRssMB: number;
  readonly machineBusyS: number;
}

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly { readonly name: string; readonly color: string; readonly value: (r: NodeRow) => number }[];
}

const PANELS: readonly Panel[] = [
  { title: 'last start to full mesh', unit: 's', series: [{ name: 'full mesh', color: '#1f77b4', value: (r) => r.meshMs / 1000 }, { name: 'all ready', color: '#aec7e8', value: (r) => r.allReadyMs / 1000 }] },
  { title: 'weftd CPU, start to full mesh', unit: 's', series: [{ name: 'max', color: '#d62728', value: (r) => r.weftdCpuS.max }, { name: 'median', color: '#ff9896', value: (r) => r.weftdCpuS.median }] },
  { title: 'weftd RSS at full mesh', unit: 'MB', series: [{ name: 'max', color: '#2ca02c', value: (r) => r.weftdRssMB.max }, { name: 'median', color: '#98df8a', value: (r) => r.weftdRssMB.median }] },
];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round axis maximum at or above `v` (1, 2 or 5 times a power of ten). */
export function niceMax(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

export function scaleChart(rows: readonly NodeRow[], title: string): string {
  const sorted = [...rows].sort((a, b) => a.nodes - b.nodes);
  const W = 900, H = 330, top = 50, bottom = 60, panelW = W / PANELS.length, padL = 50, padR = 20;
  const plotH = H - top - bottom;
  const xMax = niceMax(Math.max(1, ...sorted.map((r) => r.nodes)));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ];
  PANELS.forEach((panel, pi) => {
    const x0 = pi * panelW + padL;
    const plotW = panelW - padL - padR;
    const yMax = niceMax(Math.max(...sorted.flatMap((r) => panel.series.map((s) => s.value(r)))));
    const x = (n: number): number => x0 + (n / xMax) * plotW;
    const y = (v: number): number => top + plotH - (Math.max(0, v) / yMax) * plotH;
    out.push(`<text x="${x0 + plotW / 2}" y="${top - 12}" text-anchor="middle">${esc(panel.title)} (${panel.unit})</text>`);
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4;
      out.push(`<line x1="${x0}" x2="${x0 + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${k === 0 ? '#000' : '#ddd'}"/>`);
      out.push(`<text x="${x0 - 5}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Number(v.toPrecision(3))}</text>`);
    }
    for (const r of sorted) out.push(`<text x="${x(r.nodes).toFixed(1)}" y="${top + plotH + 15}" text-anchor="middle">${r.nodes}</text>`);
    out.push(`<text x="${x0 + plotW / 2}" y="${top + plotH + 30}" text-anchor="middle" fill="#666">weftd nodes</text>`);
    panel.series.forEach((s, si) => {
      const pts = sorted.map((r) => `${x(r.nodes).toFixed(1)},${y(s.value(r)).toFixed(1)}`);
      out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
      for (const r of sorted) {
        const v = s.value(r);
        out.push(`<circle cx="${x(r.nodes).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.name}, ${r.nodes} nodes: ${Number(v.toPrecision(3))} ${panel.unit}`)}</title></circle>`);
      }
      out.push(`<rect x="${x0 + si * 90}" y="${H - 16}" width="10" height="10" fill="${s.color}"/><text x="${x0 + si * 90 + 14}" y="${H - 7}">${esc(s.name)}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
