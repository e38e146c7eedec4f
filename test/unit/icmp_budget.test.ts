// The ICMP error budget: a burst, then a steady rate, never more.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ICMP_BURST, ICMP_PER_SECOND, IcmpBudget } from '../../src/dataplane/icmp_budget.js';

describe('ICMP error budget', () => {
  it('allows a burst at once, then one per 1/rate seconds', () => {
    const b = new IcmpBudget();
    let sent = 0;
    for (let i = 0; i < 1000; i++) if (b.take(0)) sent++;
    expect(sent).toBe(ICMP_BURST);
    expect(b.take(1)).toBe(false);
    expect(b.take(1000 / ICMP_PER_SECOND)).toBe(true);
    expect(b.take(1000 / ICMP_PER_SECOND)).toBe(false);
  });

  it('never allows more than burst + rate x elapsed, whatever the arrival times', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 50, noNaN: true }), { maxLength: 3000 }), (gaps) => {
        const b = new IcmpBudget();
        let t = 0;
        let sent = 0;
        for (const g of gaps) {
          t += g;
          if (b.take(t)) sent++;
        }
        expect(sent).toBeLessThanOrEqual(ICMP_BURST + (t * ICMP_PER_SECOND) / 1000 + 1e-9);
        // And it refills: after a quiet second, a full burst is there again.
        let again = 0;
        for (let i = 0; i < ICMP_BURST * 2; i++) if (b.take(t + 1000)) again++;
        expect(again).toBe(Math.min(ICMP_BURST, again));
        expect(again).toBeGreaterThanOrEqual(Math.min(ICMP_BURST, ICMP_PER_SECOND));
      }),
    );
  });
});
