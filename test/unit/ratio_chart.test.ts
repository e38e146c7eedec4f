// The bench's ratio chart: one labelled bar per row (weft's and the other tunnels') and column, none for
// the kernel; it widens with the rows and its legend wraps inside it.

import { describe, expect, it } from 'vitest';
import { chartTitle, ratioChart } from '../../bench/ratio_chart.js';

describe('ratio chart', () => {
  it('draws a bar per weft row and column with its ratio, on the 1x line, and none for the kernel (weftd\'s kernel engine has its bars)', () => {
    const ratios = { tcp1Gbps: 0.5, tcp4Gbps: 0.25, udpRxPps: 2, pingAvgMs: 3, machineCpuSPerGB: 1 };
    const svg = ratioChart(
      [
        { name: 'kernel', engine: 'kernel', ratios: { tcp1Gbps: 1, tcp4Gbps: 1, udpRxPps: 1, pingAvgMs: 1, machineCpuSPerGB: 1 } },
        { name: 'weft native', engine: 'native', ratios },
        { name: 'weft js <&>', engine: 'js', ratios: { ...ratios, tcp1Gbps: 0.05 } },
        { name: 'weft kernel', engine: 'kernel', ratios: { ...ratios, tcp1Gbps: 0.97 } },
      ],
      'title',
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect((svg.match(/<title>/g) ?? []).length).toBe(15);
    expect(svg).toContain('<title>weft kernel: 0.97x</title>');
    expect(svg).toContain('<title>weft native: 0.50x</title>');
    expect(svg).toContain('<title>weft js &lt;&amp;&gt;: 0.05x</title>');
    expect(svg).not.toContain('<title>kernel:');
    expect(svg).toContain('stroke-dasharray');
  });

  it('fits eight rows: every bar and legend entry inside the width, the legend on more lines', () => {
    const ratios = { tcp1Gbps: 0.5, tcp4Gbps: 0.25, udpRxPps: 2, pingAvgMs: 3, machineCpuSPerGB: 1 };
    const names = ['weft native', 'weft js', 'weft native --offload=false', 'weft native --udp-gso=false', 'weft native --udp-gro=false', 'tinc', 'wireguard-go', 'weft native --queues=2'];
    const svg = ratioChart(
      [{ name: 'kernel', engine: 'kernel', ratios: { tcp1Gbps: 1 } }, ...names.map((name) => ({ name, engine: name.split(' ')[1] ?? name, ratios }))],
      chartTitle('2026-12-01T21:00:00.000Z', 'a CPU'),
    );
    const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)![1]);
    const height = Number(/<svg [^>]*height="(\d+)"/.exec(svg)![1]);
    expect(width).toBeGreaterThan(760);
    expect(height).toBeGreaterThan(360);
    expect((svg.match(/<title>/g) ?? []).length).toBe(40);
    for (const n of names) expect(svg).toContain(`<title>${n}: 0.50x</title>`);
    for (const m of svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"/g)) {
      expect(Number(m[1]) + Number(m[3])).toBeLessThanOrEqual(width);
      expect(Number(m[2])).toBeLessThan(height);
    }
    const bars = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="#[0-9a-f]+"><title>/g)];
    for (const b of bars) expect(Number(b[1])).toBeGreaterThanOrEqual(20);
    expect(svg).toContain("each row vs the kernel's VXLAN-GPE (1x), 2026-12-01 21:00 UTC, a CPU");
  });
});
