import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { contains, formatCidr, formatIp, maskOf, parseCidr, parseIp, subnetAt, subnetCount, subnetIndexOf } from '../../src/net/ipv4.js';

describe('IPv4 addresses and prefixes', () => {
  it('parses and prints dotted quads both ways', () => {
    fc.assert(fc.property(fc.nat(0xffffffff), (ip) => parseIp(formatIp(ip)) === ip));
    expect(parseIp('10.244.1.0')).toBe(0x0af40100);
  });

  it('rejects what is not a dotted quad', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', 'a.b.c.d', '1.2.3.-1', ' 1.2.3.4', '1..2.3', '1.2.3.', '.1.2.3', '1.2.3.4444', '00.1.2.3']) expect(parseIp(bad)).toBe(-1);
  });

  it('agrees with a dotted-quad grammar written as a regular expression, on any string of digits and dots', () => {
    const quad = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;
    const oracle = (t: string): number => {
      const m = quad.exec(t);
      if (!m || m.slice(1).some((p) => Number(p) > 255)) return -1;
      return m.slice(1).reduce((v, p) => v * 256 + Number(p), 0);
    };
    const text = fc.array(fc.constantFrom('0', '1', '2', '5', '9', '.', '.', 'x'), { maxLength: 17 }).map((cs) => cs.join(''));
    fc.assert(fc.property(text, (t) => parseIp(t) === oracle(t)), { numRuns: 20_000 });
  });

  it('parses prefixes, refusing host bits with a hint', () => {
    expect(parseCidr('10.244.0.0/16')).toEqual({ base: 0x0af40000, len: 16 });
    let err: unknown;
    try {
      parseCidr('10.244.1.0/16');
    } catch (e) {
      err = e;
    }
    expect(isWeftError(err, 'WEFT_BAD_CIDR')).toBe(true);
    expect((err as Error).message).toContain('did you mean 10.244.0.0/16');
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/not an IPv4 prefix/);
    expect(() => parseCidr('banana')).toThrow(/banana/);
  });

  it('cuts a network into subnets and finds the subnet of an address', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 1, max: 8 }), fc.nat(0xffffffff), fc.nat(), (netLen, bits, seed, pick) => {
        const network = parseCidr(`${formatIp((seed & maskOf(netLen)) >>> 0)}/${netLen}`);
        const subLen = netLen + bits;
        const index = pick % subnetCount(network, subLen);
        const sub = subnetAt(network, subLen, index);
        expect(contains(network, sub.base)).toBe(true);
        const inside = (sub.base + (seed % 2 ** (32 - subLen))) >>> 0;
        expect(contains(sub, inside)).toBe(true);
        expect(subnetIndexOf(network, subLen, inside)).toBe(index);
      }),
    );
    expect(formatCidr(subnetAt(parseCidr('10.244.0.0/16'), 24, 3))).toBe('10.244.3.0/24');
  });
});
