import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatCidr, parseCidr, subnetAt, subnetCount } from '../../src/net/ipv4.js';
import { chooseSubnet } from '../../src/registry/allocation.js';

const net = parseCidr('10.244.0.0/16');

describe('subnet allocation choice', () => {
  it('takes the preferred subnet when it is free', () => {
    const want = parseCidr('10.244.7.0/24');
    expect(chooseSubnet(net, 24, new Set(), want, () => 0)).toEqual(want);
  });

  it('does not take a preferred subnet that is taken, foreign, of another size or subnet 0', () => {
    const taken = new Set([parseCidr('10.244.7.0/24').base]);
    for (const p of ['10.244.7.0/24', '10.245.7.0/24', '10.244.8.0/25', '10.244.0.0/24']) {
      const got = chooseSubnet(net, 24, taken, parseCidr(p), () => 0)!;
      expect(formatCidr(got)).not.toBe(p);
    }
  });

  it('never hands out subnet 0 or a taken subnet, and fills the network exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 70, maxLength: 70 }), (bits, rolls) => {
        const network = parseCidr('198.19.0.0/24');
        const len = 24 + bits;
        const taken = new Set<number>();
        let i = 0;
        for (;;) {
          const s = chooseSubnet(network, len, taken, undefined, () => rolls[i++ % rolls.length]!);
          if (!s) break;
          expect(s.base).not.toBe(network.base);
          expect(taken.has(s.base)).toBe(false);
          taken.add(s.base);
        }
        expect(taken.size).toBe(subnetCount(network, len) - 1);
      }),
    );
  });

  it('returns undefined for a full /28 cut into /30s', () => {
    const small = parseCidr('198.19.0.0/28');
    const taken = new Set([1, 2, 3].map((i) => subnetAt(small, 30, i).base));
    expect(chooseSubnet(small, 30, taken, undefined, Math.random)).toBeUndefined();
  });
});
