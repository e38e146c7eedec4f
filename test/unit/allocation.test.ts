import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Cidr, contains, formatCidr, parseCidr, subnetAt, subnetCount } from '../../src/net/ipv4.js';
import { chooseSubnet } from '../../src/registry/allocation.js';

const net = parseCidr('10.244.0.0/16');

describe('subnet allocation choice', () => {
  it('takes the preferred subnet when it is free', () => {
    const want = parseCidr('10.244.7.0/24');
    expect(chooseSubnet(net, 24, [], want, () => 0)).toEqual(want);
  });

  it('does not take a preferred subnet that is taken, foreign, of another size or subnet 0', () => {
    const taken = [parseCidr('10.244.7.0/24')];
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
        const taken: Cidr[] = [];
        let i = 0;
        for (;;) {
          const s = chooseSubnet(network, len, taken, undefined, () => rolls[i++ % rolls.length]!);
          if (!s) break;
          expect(s.base).not.toBe(network.base);
          expect(taken.some((t) => t.base === s.base)).toBe(false);
          taken.push(s);
        }
        expect(taken.length).toBe(subnetCount(network, len) - 1);
      }),
    );
  });

  it('returns undefined for a full /28 cut into /30s', () => {
    const small = parseCidr('198.19.0.0/28');
    const taken = [1, 2, 3].map((i) => subnetAt(small, 30, i));
    expect(chooseSubnet(small, 30, taken, undefined, Math.random)).toBeUndefined();
  });

  it('never hands out a subnet that overlaps a taken prefix of another length', () => {
    fc.assert(
      fc.property(fc.integer({ min: 20, max: 28 }), fc.integer({ min: 20, max: 28 }), fc.array(fc.nat(255), { maxLength: 40 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (takenLen, len, picks, roll) => {
        const taken = picks.map((p) => ({ base: (net.base + ((p * 2 ** (32 - takenLen)) % 2 ** 16)) >>> 0, len: takenLen }));
        const s = chooseSubnet(net, len, taken, undefined, () => roll);
        if (!s) return;
        for (const t of taken) expect(contains(t, s.base) || contains(s, t.base), `${formatCidr(s)} overlaps ${formatCidr(t)}`).toBe(false);
      }),
    );
    // The case from the review: a live /24 under a network re-cut into /25s.
    const live = parseCidr('10.244.5.0/24');
    expect(formatCidr(chooseSubnet(net, 25, [live], parseCidr('10.244.5.128/25'), () => 0)!)).not.toMatch(/^10\.244\.5\./);
  });
});
