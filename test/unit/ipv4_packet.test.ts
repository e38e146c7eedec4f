import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIp } from '../../src/net/ipv4.js';
import {
  dstAddr,
  flowHash,
  ICMP_FRAG_NEEDED,
  icmpErrorLength,
  internetChecksum,
  isValidIpv4,
  mayAnswerWithIcmp,
  srcAddr,
  writeIcmpUnreachable,
} from '../../src/wire/ipv4_packet.js';
import { icmpEcho, ipv4, udpPacket } from '../harness/packets.js';

describe('IPv4 packets', () => {
  it('validates headers and never throws on garbage', () => {
    const p = icmpEcho('198.19.1.2', '198.19.2.2');
    expect(isValidIpv4(p, 0, p.length)).toBe(true);
    expect(isValidIpv4(p, 0, 19)).toBe(false);
    expect(isValidIpv4(ipv4({ src: '1.1.1.1', dst: '2.2.2.2', totalLength: 999 }), 0, 28)).toBe(false);
    const v6 = Buffer.from(p);
    v6[0] = 0x60;
    expect(isValidIpv4(v6, 0, v6.length)).toBe(false);
    const badIhl = Buffer.from(p);
    badIhl[0] = 0x44;
    expect(isValidIpv4(badIhl, 0, badIhl.length)).toBe(false);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => typeof isValidIpv4(b, 0, b.length) === 'boolean'));
  });

  it('computes checksums that verify to zero', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 200 }), (bytes) => {
        const b = Buffer.concat([Buffer.from(bytes), Buffer.alloc(bytes.length % 2)]);
        const sum = internetChecksum(b, 0, b.length);
        const withSum = Buffer.concat([b, Buffer.from([sum >>> 8, sum & 0xff])]);
        return internetChecksum(withSum, 0, withSum.length) === 0;
      }),
    );
  });

  it('hashes flows stably and spreads ports over the kernel range', () => {
    const a = udpPacket('198.19.1.2', '198.19.2.2', 1000, 53);
    const b = udpPacket('198.19.1.2', '198.19.2.2', 1001, 53);
    expect(flowHash(a, 0, a.length)).toBe(flowHash(Buffer.from(a), 0, a.length));
    expect(flowHash(a, 0, a.length)).not.toBe(flowHash(b, 0, b.length));
    // Flows spread over the sending sockets: hash % sockets picks one (4 per native worker, 8 in js).
    const perSocket = [0, 0, 0, 0];
    for (let sp = 1000; sp < 1200; sp++) {
      const u = udpPacket('198.19.1.2', '198.19.2.2', sp, 53);
      perSocket[flowHash(u, 0, u.length) % 4]!++;
    }
    for (const n of perSocket) expect(n).toBeGreaterThan(30);
  });

  it('builds an ICMP net-unreachable that quotes the offender, with valid checksums', () => {
    const pkt = udpPacket('198.19.1.2', '198.19.9.9', 4000, 80, 100);
    const out = Buffer.alloc(icmpErrorLength(pkt, 0, pkt.length));
    const n = writeIcmpUnreachable(out, pkt, 0, pkt.length, parseIp('198.19.1.0'), 0);
    expect(n).toBe(28 + 28);
    expect(isValidIpv4(out, 0, n)).toBe(true);
    expect(srcAddr(out, 0)).toBe(parseIp('198.19.1.0'));
    expect(dstAddr(out, 0)).toBe(parseIp('198.19.1.2'));
    expect(internetChecksum(out, 0, 20)).toBe(0);
    expect(out[20]).toBe(3);
    expect(out[21]).toBe(0);
    expect(internetChecksum(out, 20, n - 20)).toBe(0);
    expect(out.subarray(28, n)).toEqual(pkt.subarray(0, 28));
  });

  it('builds an ICMP fragmentation-needed carrying the next-hop MTU, with valid checksums', () => {
    const pkt = udpPacket('198.19.1.2', '198.19.9.9', 4000, 80, 1400);
    const out = Buffer.alloc(icmpErrorLength(pkt, 0, pkt.length));
    const n = writeIcmpUnreachable(out, pkt, 0, pkt.length, parseIp('198.19.1.0'), ICMP_FRAG_NEEDED, 1364);
    expect([out[20], out[21]]).toEqual([3, 4]);
    expect(out.readUInt16BE(26)).toBe(1364);
    expect(out.readUInt16BE(24)).toBe(0);
    expect(internetChecksum(out, 20, n - 20)).toBe(0);
  });

  it('never answers ICMP errors, non-first fragments or multicast sources', () => {
    const echo = icmpEcho('198.19.1.2', '198.19.9.9');
    expect(mayAnswerWithIcmp(echo, 0, echo.length)).toBe(true);
    const unreachable = Buffer.from(echo);
    unreachable[20] = 3;
    expect(mayAnswerWithIcmp(unreachable, 0, unreachable.length)).toBe(false);
    const frag = ipv4({ src: '198.19.1.2', dst: '198.19.9.9', fragOffset: 0x0010 });
    expect(mayAnswerWithIcmp(frag, 0, frag.length)).toBe(false);
    const mcast = ipv4({ src: '224.0.0.5', dst: '198.19.9.9' });
    expect(mayAnswerWithIcmp(mcast, 0, mcast.length)).toBe(false);
  });
});
