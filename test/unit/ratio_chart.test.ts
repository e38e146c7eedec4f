// The bench's ratio chart: one labelled bar per weft row and column, none for the kernel.

import { describe, expect, it } from 'vitest';
import { ratioChart } from '../../bench/ratio_chart.js';

describe('ratio chart', () => {
  it('draws a bar per weft row and column with its ratio, on the 1x line, and none for the kernel', () => {
    const ratios = { tcp1Gbps: 0.5, tcp4Gbps: 0.25, udpRxPps: 2, pingAvgMs: 3, machineCpuSPerGB: 1 };
    const svg = ratioChart(
      [
        { name: 'kernel', engine: 'kernel', ratios: { tcp1Gbps: 1, tcp4Gbps: 1, udpRxPps: 1, pingAvgMs: 1, machineCpuSPerGB: 1 } },
        { name: 'weft native', engine: 'native', ratios },
        { name: 'weft js <&>', engine: 'js', ratios: { ...ratios, tcp1Gbps: 0.05 } },
      ],
      'title',
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect((svg.match(/<title>/g) ?? []).length).toBe(10);
    expect(svg).toContain('<title>weft native: 0.50x</title>');
    expect(svg).toContain('<title>weft js &lt;&amp;&gt;: 0.05x</title>');
    expect(svg).not.toContain('<title>kernel');
    expect(svg).toContain('stroke-dasharray');
  });
});
