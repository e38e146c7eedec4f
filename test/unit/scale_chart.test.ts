// The scale bench's chart: a point per series and node count, in order, with its value; round axis maxima.

import { describe, expect, it } from 'vitest';
import { niceMax, scaleChart, type NodeRow } from '../../bench/scale_chart.js';

const row = (nodes: number, meshMs: number, cpu: number, rss: number): NodeRow => ({
  nodes,
  allReadyMs: meshMs / 2,
  meshMs,
  spawnMs: nodes * 10,
  weftdCpuS: { median: cpu / 2, max: cpu },
  weftdRssMB: { median: rss - 10, max: rss },
  etcdPeakRssMB: 50,
  machineBusyS: 10,
});

describe('scale chart', () => {
  it('draws one point per series and node count, left to right, with its value', () => {
    const svg = scaleChart([row(30, 21_600, 1.2, 80), row(10, 4000, 0.6, 75)], 'a <title> & more');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;title&gt; &amp; more');
    // 3 panels x 2 series x 2 node counts.
    expect((svg.match(/<circle /g) ?? []).length).toBe(12);
    expect(svg).toContain('<title>full mesh, 30 nodes: 21.6 s</title>');
    expect(svg).toContain('<title>max, 10 nodes: 0.6 s</title>');
    expect(svg).toContain('<title>max, 30 nodes: 80 MB</title>');
    // The mesh line goes from 10 nodes (left) to 30 (right), upward.
    const line = /<polyline points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    expect(line).toHaveLength(2);
    expect(line[0]![0]).toBeLessThan(line[1]![0]);
    expect(line[0]![1]).toBeGreaterThan(line[1]![1]);
  });

  it('rounds axis maxima up to 1, 2 or 5 times a power of ten', () => {
    expect([0.3, 1, 1.1, 21.6, 80, 100, 101].map(niceMax)).toEqual([0.5, 1, 2, 50, 100, 100, 200]);
    expect(niceMax(0)).toBe(1);
    expect(niceMax(Number.NaN)).toBe(1);
  });
});
