// The native offloads (native/offload.cc) through the test addon's
// exports: TSO segmentation of the kernel's TCP super-packets, checksum
// completion, and TCP coalescing before the TUN write. No TUN needed, except
// for the last block (root only), where the kernel itself takes a coalesced
// super-packet from a TUN, forwards it and resegments it.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { type ExecResult, run as runCommand } from '../lab/exec.js';
import { loadTestAddon } from '../harness/test_addon.js';
import { internetChecksum } from '../../src/wire/ipv4_packet.js';
import {
  icmpEcho,
  pseudoHeaderSum,
  readVnetHdr,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  tcpPacket,
  type TcpSpec,
  udpPacket,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_ECN,
  VNET_GSO_NONE,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
  VNET_GSO_UDP,
  VNET_HDR_LEN,
  type VnetHdrSpec,
  withVnetHdr,
} from '../harness/packets.js';

const addon = loadTestAddon();
const SRC = '198.19.1.2';
const DST = '198.19.2.3';
const DF = 0x4000;
/** NOP, NOP, timestamps (val 1, ecr 2): what Linux puts on every data segment. */
const TS_OPTION = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
const VNET_GSO_UDP_L4 = 5;

type Seg = Omit<TcpSpec, 'src' | 'dst' | 'sport' | 'dport'> & Partial<Pick<TcpSpec, 'src' | 'dst' | 'sport' | 'dport'>>;

function tcp(spec: Seg): Buffer {
  return tcpPacket({ src: SRC, dst: DST, sport: 40000, dport: 5201, fragOffset: DF, tcpOptions: TS_OPTION, ...spec });
}

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed + (i >> 8)) & 0xff;
  return b;
}

const ihlOf = (p: Uint8Array): number => (p[0]! & 0x0f) * 4;
const thlOf = (p: Uint8Array): number => (p[ihlOf(p) + 12]! >> 4) * 4;

function fields(p: Buffer) {
  const ihl = ihlOf(p);
  const thl = thlOf(p);
  return {
    ihl,
    thl,
    tos: p[1]!,
    totLen: p.readUInt16BE(2),
    id: p.readUInt16BE(4),
    frag: p.readUInt16BE(6),
    ttl: p[8]!,
    seq: p.readUInt32BE(ihl + 4),
    ack: p.readUInt32BE(ihl + 8),
    flags: p[ihl + 13]!,
    window: p.readUInt16BE(ihl + 14),
    check: p.readUInt16BE(ihl + 16),
    ipOptions: p.subarray(20, ihl),
    tcpOptions: p.subarray(ihl + 20, ihl + thl),
    payload: p.subarray(ihl + thl),
  };
}

const ipChecksumOk = (p: Buffer): boolean => internetChecksum(p, 0, ihlOf(p)) === 0;
function tcpChecksumOk(p: Buffer): boolean {
  const ihl = ihlOf(p);
  return internetChecksum(p, ihl, p.length - ihl, pseudoHeaderSum(p, 6, p.length - ihl)) === 0;
}
/** The folded, not complemented, pseudo-header sum: the CHECKSUM_PARTIAL value of the TCP field. */
function partialSum(p: Buffer): number {
  const l4 = p.length - ihlOf(p);
  return ~internetChecksum(p, 0, 0, pseudoHeaderSum(p, 6, l4)) & 0xffff;
}

/** A super-packet as Linux hands it over a vnet-hdr TUN: pseudo-header sum in the TCP field, NEEDS_CSUM, TSO. */
function superPacket(spec: Seg, gsoSize: number, hdr: VnetHdrSpec = {}): Buffer {
  const pkt = tcp({ ...spec, partialChecksum: true });
  const ihl = ihlOf(pkt);
  return withVnetHdr(
    { flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, gsoSize, hdrLen: ihl + thlOf(pkt), csumStart: ihl, csumOffset: 16, ...hdr },
    pkt,
  );
}

function segment(buf: Buffer, headroom = 8): Buffer[] & { stride: number; headroomIntact: boolean } {
  const segs = addon.tsoSegment(buf, headroom);
  if (segs === null) throw new Error('tsoSegment refused the packet');
  return segs;
}

/** Checks what every segment of a super-packet must satisfy; returns the payloads concatenated. */
function checkSegments(segs: Buffer[], orig: ReturnType<typeof fields>, mss: number): Buffer {
  const n = segs.length;
  expect(n).toBe(Math.ceil(orig.payload.length / mss));
  segs.forEach((s, i) => {
    const f = fields(s);
    expect(f.totLen).toBe(s.length);
    expect(ipChecksumOk(s), `IP checksum of segment ${i}`).toBe(true);
    expect(tcpChecksumOk(s), `TCP checksum of segment ${i}`).toBe(true);
    expect(f.id).toBe((orig.id + i) & 0xffff);
    expect(f.seq).toBe((orig.seq + i * mss) >>> 0);
    expect(f.payload.length).toBe(i < n - 1 ? mss : orig.payload.length - (n - 1) * mss);
    expect({ ack: f.ack, window: f.window, ttl: f.ttl, tos: f.tos, frag: f.frag }).toEqual({
      ack: orig.ack,
      window: orig.window,
      ttl: orig.ttl,
      tos: orig.tos,
      frag: orig.frag,
    });
    expect(f.ipOptions.equals(orig.ipOptions)).toBe(true);
    expect(f.tcpOptions.equals(orig.tcpOptions)).toBe(true);
    let want = orig.flags;
    if (i < n - 1) want &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) want &= ~TCP_CWR;
    expect(f.flags, `flags of segment ${i}`).toBe(want);
  });
  return Buffer.concat(segs.map((s) => fields(s).payload));
}

describe('tsoSegment', () => {
  it('splits a super-packet into MSS segments at a fixed stride, with every field and checksum right', () => {
    const payload = pattern(4000);
    const buf = superPacket({ payload, seq: 123456, ack: 777, id: 0x4000, window: 1234 }, 1448);
    const segs = segment(buf, 8);
    expect(segs).toHaveLength(3);
    expect(segs.map((s) => s.length)).toEqual([20 + 32 + 1448, 20 + 32 + 1448, 20 + 32 + 1104]);
    expect(segs.stride).toBe(8 + 20 + 32 + 1448);
    expect(segs.headroomIntact).toBe(true);
    expect(checkSegments(segs, fields(buf.subarray(VNET_HDR_LEN)), 1448).equals(payload)).toBe(true);
  });

  it.each([
    [1, 100],
    [1337, 5000],
    [1448, 65535 - 52],
    [1000, 3000],
    [7, 7 * 9 + 1],
  ])('MSS %i over %i payload bytes: short last segment, payload intact', (mss, size) => {
    const payload = randomBytes(size);
    const buf = superPacket({ payload, seq: 0xfffff000 }, mss); // seq wraps for the larger ones
    const segs = segment(buf, 8);
    expect(segs.headroomIntact).toBe(true);
    expect(checkSegments(segs, fields(buf.subarray(VNET_HDR_LEN)), mss).equals(payload)).toBe(true);
  });

  it('puts FIN and PSH only on the last segment, CWR only on the first, and keeps ECE on all', () => {
    const flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR | TCP_ECE;
    const buf = superPacket({ payload: pattern(3500), flags }, 1000, { gsoType: VNET_GSO_TCPV4 | VNET_GSO_ECN });
    const segs = segment(buf);
    expect(segs.map((s) => fields(s).flags)).toEqual([
      TCP_ACK | TCP_CWR | TCP_ECE,
      TCP_ACK | TCP_ECE,
      TCP_ACK | TCP_ECE,
      TCP_ACK | TCP_PSH | TCP_FIN | TCP_ECE,
    ]);
  });

  it('increments the IP id per segment, wrapping at 65535', () => {
    const segs = segment(superPacket({ payload: pattern(300), id: 0xfffe }, 100));
    expect(segs.map((s) => fields(s).id)).toEqual([0xfffe, 0xffff, 0x0000]);
  });

  it('copies IP options and TCP options into every segment', () => {
    const ipOptions = Buffer.from([0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]); // router alert, NOPs, EOL
    const tcpOptions = Buffer.concat([TS_OPTION, Buffer.from([1, 1, 4, 2])]); // + NOP NOP SACK-permitted
    const payload = pattern(2500);
    const buf = superPacket({ payload, options: ipOptions, tcpOptions }, 999);
    const segs = segment(buf, 0);
    expect(segs.stride).toBe(28 + 36 + 999);
    expect(fields(segs[0]!).ihl).toBe(28);
    expect(checkSegments(segs, fields(buf.subarray(VNET_HDR_LEN)), 999).equals(payload)).toBe(true);
  });

  it('gives one complete segment when the payload fits gso_size, and ignores a missing NEEDS_CSUM', () => {
    const payload = pattern(500);
    for (const flags of [VNET_F_NEEDS_CSUM, 0]) {
      const buf = superPacket({ payload, flags: TCP_ACK | TCP_PSH }, 1448, { flags });
      const segs = segment(buf);
      expect(segs).toHaveLength(1);
      expect(segs.stride).toBe(8 + 20 + 32 + 500);
      expect(tcpChecksumOk(segs[0]!)).toBe(true);
      expect(fields(segs[0]!).flags).toBe(TCP_ACK | TCP_PSH);
      expect(fields(segs[0]!).payload.equals(payload)).toBe(true);
    }
  });

  it('ignores bytes after the IP total length', () => {
    const buf = Buffer.concat([superPacket({ payload: pattern(2000) }, 1000), Buffer.alloc(13, 0xee)]);
    const segs = segment(buf);
    expect(segs).toHaveLength(2);
    expect(Buffer.concat(segs.map((s) => fields(s).payload)).equals(pattern(2000))).toBe(true);
  });

  it('needs out_cap for exactly (n-1) * stride + headroom + last length, and n <= max_segs', () => {
    const buf = superPacket({ payload: pattern(2500) }, 1000); // 3 segments, last 500 bytes
    const stride = 8 + 52 + 1000;
    const exact = 2 * stride + 8 + 52 + 500;
    expect(addon.tsoSegment(buf, 8, 3, exact)).toHaveLength(3);
    expect(addon.tsoSegment(buf, 8, 3, exact - 1)).toBeNull();
    expect(addon.tsoSegment(buf, 8, 2)).toBeNull();
    expect(addon.tsoSegment(buf, 8, 0)).toBeNull();
  });

  describe('refuses (null), never crashes on', () => {
    const good = (): Buffer => superPacket({ payload: pattern(3000) }, 1000);
    const cases: Array<[string, () => Buffer]> = [
      ['gso_type NONE', () => superPacket({ payload: pattern(3000) }, 1000, { gsoType: VNET_GSO_NONE })],
      ['gso_type TCPV6', () => superPacket({ payload: pattern(3000) }, 1000, { gsoType: VNET_GSO_TCPV6 })],
      ['gso_type UDP', () => superPacket({ payload: pattern(3000) }, 1000, { gsoType: VNET_GSO_UDP })],
      ['gso_type UDP_L4', () => superPacket({ payload: pattern(3000) }, 1000, { gsoType: VNET_GSO_UDP_L4 })],
      ['gso_size 0', () => superPacket({ payload: pattern(3000) }, 0)],
      ['csum_start beyond the packet', () => superPacket({ payload: pattern(3000) }, 1000, { csumStart: 60000 })],
      ['csum_start not at the TCP header', () => superPacket({ payload: pattern(3000) }, 1000, { csumStart: 0 })],
      ['csum_offset not 16', () => superPacket({ payload: pattern(3000) }, 1000, { csumOffset: 6 })],
      ['no payload', () => superPacket({ payload: Buffer.alloc(0) }, 1000)],
      ['a buffer shorter than the vnet header', () => Buffer.alloc(9)],
      ['a vnet header alone', () => good().subarray(0, VNET_HDR_LEN)],
      ['a truncated IP header', () => good().subarray(0, VNET_HDR_LEN + 19)],
      ['a truncated TCP header', () => good().subarray(0, VNET_HDR_LEN + 20 + 31)],
      ['a total length beyond the buffer', () => good().subarray(0, good().length - 1)],
      [
        'a UDP packet',
        () => withVnetHdr({ gsoType: VNET_GSO_TCPV4, gsoSize: 100, flags: 0 }, udpPacket(SRC, DST, 1, 2, 1000)),
      ],
      [
        'IPv6',
        () => {
          const b = good();
          b[VNET_HDR_LEN] = 0x65;
          return b;
        },
      ],
      [
        'IHL 4',
        () => {
          const b = good();
          b[VNET_HDR_LEN] = 0x44;
          return b;
        },
      ],
      [
        'a TCP data offset of 4',
        () => {
          const b = good();
          b[VNET_HDR_LEN + 20 + 12] = 0x40;
          return b;
        },
      ],
      [
        'a TCP data offset beyond the packet',
        () => {
          const b = superPacket({ payload: pattern(30) }, 10);
          b[VNET_HDR_LEN + 20 + 12] = 0xf0; // 60 > 32 + 30... header 60, packet 20 + 62
          b.writeUInt16BE(20 + 40, VNET_HDR_LEN + 2); // total length shorter than IHL + 60
          return b;
        },
      ],
      ['a fragment (MF)', () => superPacket({ payload: pattern(3000), fragOffset: 0x2000 }, 1000)],
      ['a fragment (offset)', () => superPacket({ payload: pattern(3000), fragOffset: 0x0010 }, 1000)],
    ];
    it.each(cases)('%s', (_name, make) => {
      expect(addon.tsoSegment(make(), 8)).toBeNull();
    });

    it('random garbage after a TSO vnet header', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.integer({ min: 0, max: 2000 }), (bytes, gso) => {
          const buf = withVnetHdr({ gsoType: VNET_GSO_TCPV4, gsoSize: gso, flags: VNET_F_NEEDS_CSUM, csumStart: 20, csumOffset: 16 }, bytes);
          const segs = addon.tsoSegment(buf, 8);
          if (segs !== null) for (const s of segs) expect(tcpChecksumOk(s)).toBe(true);
        }),
        { numRuns: 2000 },
      );
    });

    it('valid super-packets with a few bytes changed: refused, or segmented with every checksum right', () => {
      let accepted = 0;
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 5000 }),
          fc.integer({ min: 1, max: 1500 }),
          fc.array(fc.record({ at: fc.nat(80), value: fc.nat(255) }), { minLength: 1, maxLength: 3 }),
          (payload, gso, changes) => {
            const buf = superPacket({ payload: pattern(payload) }, gso);
            for (const c of changes) buf[VNET_HDR_LEN + c.at] = c.value;
            const segs = addon.tsoSegment(buf, 8, 256);
            if (segs === null) return;
            accepted++;
            for (const s of segs) {
              expect(ipChecksumOk(s)).toBe(true);
              expect(tcpChecksumOk(s)).toBe(true);
            }
          },
        ),
        { numRuns: 1000 },
      );
      // Most changes land in the payload or in fields segmentation rewrites: many must still parse.
      expect(accepted).toBeGreaterThan(200);
    });
  });
});

describe('tsoHeaders, the splitter the engine runs', () => {
  it('gives exactly the segments tsoSegment gives, and refuses exactly what it refuses, valid or mangled', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 1, max: 1500 }),
        fc.array(fc.record({ at: fc.nat(80), value: fc.nat(255) }), { maxLength: 2 }),
        fc.integer({ min: 1, max: 80 }),
        (payload, gso, changes, maxSegs) => {
          const buf = superPacket({ payload: pattern(payload) }, gso);
          for (const c of changes) buf[VNET_HDR_LEN + c.at] = c.value;
          const reference = addon.tsoSegment(buf, 8, maxSegs);
          const engine = addon.tsoHeaders(buf, maxSegs);
          if (reference === null) {
            expect(engine).toBeNull();
            return;
          }
          accepted++;
          expect(engine).not.toBeNull();
          expect(engine!.map((b) => b.toString('hex'))).toEqual([...reference].map((b) => b.toString('hex')));
        },
      ),
      { numRuns: 600 },
    );
    expect(accepted).toBeGreaterThan(100);
  });

  it('toward a peer that takes partial checksums, leaves each TCP checksum as the pseudo-header sum and changes nothing else', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 1, max: 1500 }), (payload, gso) => {
        const buf = superPacket({ payload: pattern(payload) }, gso);
        const full = addon.tsoHeaders(buf)!;
        const partial = addon.tsoHeaders(buf, undefined, true)!;
        expect(partial).toHaveLength(full.length);
        partial.forEach((seg, i) => {
          expect(fields(seg).check).toBe(partialSum(seg));
          // What the receiving kernel does with CHECKSUM_PARTIAL gives the fully summed segment
          // (up to how a sum of 0 is written: 0xffff by completion, as Linux does).
          expect(addon.completeChecksum(seg, ihlOf(seg), 16)).toBe(true);
          expect(tcpChecksumOk(seg)).toBe(true);
          const at = ihlOf(seg) + 16;
          expect(Buffer.concat([seg.subarray(0, at), seg.subarray(at + 2)]).equals(Buffer.concat([full[i]!.subarray(0, at), full[i]!.subarray(at + 2)]))).toBe(true);
        });
      }),
      { numRuns: 200 },
    );
  });
});

describe('completeChecksum', () => {
  it('completes TCP, UDP and ICMP checksums from the pseudo-header sum Linux leaves, at odd lengths too', () => {
    for (const size of [0, 1, 2, 3, 7, 1001, 1500]) {
      const t = tcp({ payload: pattern(size, size), partialChecksum: true });
      expect(addon.completeChecksum(t, 20, 16)).toBe(true);
      expect(t.equals(tcp({ payload: pattern(size, size) })), `TCP, ${size} bytes`).toBe(true);

      const u = udpPacket(SRC, DST, 4000, 4790, size);
      pattern(size, 3).copy(u, 28);
      u.writeUInt16BE(~internetChecksum(u, 0, 0, pseudoHeaderSum(u, 17, 8 + size)) & 0xffff, 26);
      expect(addon.completeChecksum(u, 20, 6)).toBe(true);
      expect(internetChecksum(u, 20, 8 + size, pseudoHeaderSum(u, 17, 8 + size)), `UDP, ${size} bytes`).toBe(0);

      const icmp = icmpEcho(SRC, DST, size);
      const want = icmp.readUInt16BE(22);
      icmp.writeUInt16BE(0, 22);
      expect(addon.completeChecksum(icmp, 20, 2)).toBe(true);
      expect(icmp.readUInt16BE(22)).toBe(want);
    }
  });

  it('works from an odd csum_start (the sum starts where it is told)', () => {
    const b = Buffer.concat([Buffer.from([0xaa]), pattern(101)]);
    b.writeUInt16BE(0, 1 + 10);
    expect(addon.completeChecksum(b, 1, 10)).toBe(true);
    expect(internetChecksum(b, 1, 101)).toBe(0);
  });

  it('stores a result of 0 as 0xffff, as Linux does', () => {
    const u = udpPacket(SRC, DST, 4000, 4790, 16);
    u.writeUInt16BE(0, 26);
    u.writeUInt16BE(0, 28);
    // Choose the first payload word so that the data sums to 0xffff: the checksum folds to 0.
    const sum = ~internetChecksum(u, 20, u.length - 20) & 0xffff;
    u.writeUInt16BE(~sum & 0xffff, 28);
    expect(addon.completeChecksum(u, 20, 6)).toBe(true);
    expect(u.readUInt16BE(26)).toBe(0xffff);
    expect(internetChecksum(u, 20, u.length - 20)).toBe(0);
  });

  it.each([
    ['csum_start beyond the packet', 200, 6],
    ['the field past the end', 20, 80],
    ['the field half past the end', 21, 78],
    ['an odd csum_offset', 20, 7],
    ['both at the maximum', 65535, 65535],
  ])('refuses %s and leaves the packet untouched', (_name, start, offset) => {
    const u = udpPacket(SRC, DST, 1, 2, 72); // 100 bytes
    const copy = Buffer.from(u);
    expect(addon.completeChecksum(u, start, offset)).toBe(false);
    expect(u.equals(copy)).toBe(true);
  });

  it('accepts a field ending exactly at the end of the packet', () => {
    const b = pattern(100);
    b.writeUInt16BE(0, 98);
    expect(addon.completeChecksum(b, 20, 78)).toBe(true);
    expect(internetChecksum(b, 20, 80)).toBe(0);
  });
});

/** Splits a coalescer output into its vnet header and packet. */
function unpack(out: Buffer) {
  return { hdr: readVnetHdr(out.subarray(0, VNET_HDR_LEN)), pkt: out.subarray(VNET_HDR_LEN) };
}

/** Consecutive segments of one flow: sizes[i] payload bytes each, from `seq`, ids from `id`. */
function flow(sizes: number[], spec: Seg = {}): Buffer[] {
  let seq = spec.seq ?? 1000;
  let id = spec.id ?? 100;
  return sizes.map((size, i) => {
    const p = tcp({ ...spec, seq, id, payload: pattern(size, i) });
    seq = (seq + size) >>> 0;
    id = (id + 1) & 0xffff;
    return p;
  });
}

const payloadOf = (p: Buffer): Buffer => fields(p).payload;

/** Expects `out` to be exactly `pkts`, each alone behind a zero vnet header. */
function expectSingles(out: Buffer[], pkts: Buffer[]): void {
  expect(out).toHaveLength(pkts.length);
  out.forEach((o, i) => {
    expect(o.subarray(0, VNET_HDR_LEN).equals(Buffer.alloc(VNET_HDR_LEN)), `zero vnet header ${i}`).toBe(true);
    expect(o.subarray(VNET_HDR_LEN).equals(pkts[i]!), `packet ${i} untouched`).toBe(true);
  });
}

/** Expects a merged super-packet of `pkts` (in order) with everything a TUN write needs. */
function expectMerged(out: Buffer, pkts: Buffer[]): void {
  const { hdr, pkt } = unpack(out);
  const head = fields(pkts[0]!);
  expect(hdr).toEqual({
    flags: VNET_F_NEEDS_CSUM,
    gsoType: VNET_GSO_TCPV4,
    hdrLen: 20 + head.thl,
    gsoSize: head.payload.length,
    csumStart: 20,
    csumOffset: 16,
  });
  const f = fields(pkt);
  expect(f.totLen).toBe(pkt.length);
  expect(ipChecksumOk(pkt)).toBe(true);
  expect(f.check).toBe(partialSum(pkt));
  expect({ id: f.id, seq: f.seq, ack: f.ack, window: f.window, ttl: f.ttl }).toEqual({
    id: head.id,
    seq: head.seq,
    ack: head.ack,
    window: head.window,
    ttl: head.ttl,
  });
  expect(f.tcpOptions.equals(head.tcpOptions)).toBe(true);
  expect(f.payload.equals(Buffer.concat(pkts.map(payloadOf)))).toBe(true);
  // Completing the checksum as the kernel would gives a valid packet.
  const done = Buffer.from(pkt);
  expect(addon.completeChecksum(done, 20, 16)).toBe(true);
  expect(tcpChecksumOk(done)).toBe(true);
}

describe('coalesce', () => {
  it('merges in-order segments of one flow into one super-packet, a short last one included', () => {
    const pkts = flow([1448, 1448, 1448, 600]);
    const out = addon.coalesce(pkts);
    expect(out).toHaveLength(1);
    expectMerged(out[0]!, pkts);
    expect(fields(unpack(out[0]!).pkt).flags).toBe(TCP_ACK);
  });

  it('closes the packet after a short segment', () => {
    const pkts = flow([1000, 500, 1000, 1000]);
    const out = addon.coalesce(pkts);
    expect(out).toHaveLength(2);
    expectMerged(out[0]!, pkts.slice(0, 2));
    expectMerged(out[1]!, pkts.slice(2));
  });

  it('closes the packet after a PSH segment, and carries PSH in the merged header', () => {
    const pkts = flow([1000, 1000, 1000]);
    pkts[1] = tcp({ seq: 2000, id: 101, payload: pattern(1000, 1), flags: TCP_ACK | TCP_PSH });
    const out = addon.coalesce(pkts);
    expect(out).toHaveLength(2);
    expectMerged(out[0]!, pkts.slice(0, 2));
    expect(fields(unpack(out[0]!).pkt).flags).toBe(TCP_ACK | TCP_PSH);
    expectSingles(out.slice(1), pkts.slice(2));
  });

  it('never starts a merge from a PSH segment', () => {
    const pkts = flow([1000, 1000]);
    pkts[0] = tcp({ seq: 1000, id: 100, payload: pattern(1000, 0), flags: TCP_ACK | TCP_PSH });
    expectSingles(addon.coalesce(pkts), pkts);
  });

  it('never merges across flows, even interleaved', () => {
    const a = flow([1000, 1000]);
    const b = flow([1000, 1000], { sport: 40001 });
    const c = flow([1000, 1000], { dst: '198.19.2.4' });
    expectSingles(addon.coalesce([a[0]!, b[0]!, a[1]!, b[1]!]), [a[0]!, b[0]!, a[1]!, b[1]!]);
    const out = addon.coalesce([...a, ...b, ...c]);
    expect(out).toHaveLength(3);
    expectMerged(out[0]!, a);
    expectMerged(out[1]!, b);
    expectMerged(out[2]!, c);
  });

  it('never merges out of order, a retransmission, or across a gap', () => {
    const p = flow([1000, 1000, 1000]);
    expectSingles(addon.coalesce([p[1]!, p[0]!]), [p[1]!, p[0]!]);
    expectSingles(addon.coalesce([p[0]!, p[0]!]), [p[0]!, p[0]!]);
    expectSingles(addon.coalesce([p[0]!, p[2]!]), [p[0]!, p[2]!]);
  });

  it('follows the sequence number across its wrap', () => {
    const pkts = flow([1000, 1000, 1000], { seq: 0xffffff00 });
    const out = addon.coalesce(pkts);
    expect(out).toHaveLength(1);
    expectMerged(out[0]!, pkts);
  });

  it.each<[string, Seg]>([
    ['a different ack', { ack: 5001 }],
    ['a different window', { window: 503 }],
    ['different TCP options (timestamp)', { tcpOptions: Buffer.from([1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 2]) }],
    ['a different TCP header length', { tcpOptions: Buffer.alloc(0) }],
    ['a different TTL', { ttl: 63 }],
    ['a different TOS (ECN CE)', { tos: 0x03 }],
    ['no DF after DF', { fragOffset: 0 }],
    ['SYN', { flags: TCP_ACK | TCP_SYN }],
    ['FIN', { flags: TCP_ACK | TCP_FIN }],
    ['RST', { flags: TCP_ACK | TCP_RST }],
    ['URG', { flags: TCP_ACK | TCP_URG }],
    ['CWR', { flags: TCP_ACK | TCP_CWR }],
    ['ECE', { flags: TCP_ACK | TCP_ECE }],
    ['no ACK', { flags: 0 }],
    ['a bad TCP checksum', { checksum: 0x1234 }],
    ['a larger payload', { payload: pattern(1001, 1) }],
    ['no payload (a pure ACK)', { payload: Buffer.alloc(0) }],
    ['IP options', { options: Buffer.from([1, 1, 1, 0]) }],
  ])('does not append a segment with %s', (_name, change) => {
    const head = tcp({ seq: 1000, id: 100, payload: pattern(1000, 0) });
    const next = tcp({ seq: 2000, id: 101, payload: pattern(1000, 1), ...change });
    expectSingles(addon.coalesce([head, next]), [head, next]);
  });

  it.each<[string, Seg]>([
    ['SYN', { flags: TCP_ACK | TCP_SYN }],
    ['FIN', { flags: TCP_ACK | TCP_FIN }],
    ['CWR', { flags: TCP_ACK | TCP_CWR }],
    ['a bad TCP checksum', { checksum: 0x1234 }],
    ['IP options', { options: Buffer.from([1, 1, 1, 0]) }],
  ])('does not merge onto a head with %s', (_name, change) => {
    const head = tcp({ seq: 1000, id: 100, payload: pattern(1000, 0), ...change });
    const next = tcp({ seq: 2000, id: 101, payload: pattern(1000, 1) });
    expectSingles(addon.coalesce([head, next]), [head, next]);
  });

  it('never merges a segment with a bad IP header checksum', () => {
    const head = tcp({ seq: 1000, id: 100, payload: pattern(1000, 0) });
    const next = tcp({ seq: 2000, id: 101, payload: pattern(1000, 1) });
    next.writeUInt16BE(next.readUInt16BE(10) ^ 0x0100, 10);
    expectSingles(addon.coalesce([head, next]), [head, next]);
    expectSingles(addon.coalesce([next, head]), [next, head]);
  });

  it('after a refused corrupt segment, starts over with it and does not merge onto it', () => {
    const pkts = flow([1000, 1000, 1000]);
    const bad = Buffer.from(pkts[1]!);
    bad[bad.length - 1]! ^= 0xff; // payload corrupted: the TCP checksum no longer matches
    const out = addon.coalesce([pkts[0]!, bad, pkts[2]!]);
    expectSingles(out, [pkts[0]!, bad, pkts[2]!]);
  });

  it('requires consecutive IP ids without DF, any ids with DF', () => {
    const noDf = flow([1000, 1000, 1000], { fragOffset: 0 });
    expect(addon.coalesce(noDf)).toHaveLength(1);
    const skipped = [noDf[0]!, tcp({ seq: 2000, id: 105, payload: pattern(1000, 1), fragOffset: 0 })];
    expectSingles(addon.coalesce(skipped), skipped);
    const df = [tcp({ seq: 1000, id: 7, payload: pattern(1000, 0) }), tcp({ seq: 2000, id: 0, payload: pattern(1000, 1) })];
    const out = addon.coalesce(df);
    expect(out).toHaveLength(1);
    expectMerged(out[0]!, df);
  });

  it('keeps the IP total length within 65535', () => {
    const pkts = flow(new Array<number>(60).fill(1448));
    const out = addon.coalesce(pkts);
    const perPacket = Math.floor((65535 - 52) / 1448); // 45 segments fit
    expect(out.map((o) => unpack(o).hdr.gsoSize)).toEqual([1448, 1448]);
    expectMerged(out[0]!, pkts.slice(0, perPacket));
    expectMerged(out[1]!, pkts.slice(perPacket));
    expect(out.every((o) => o.length <= VNET_HDR_LEN + 65535)).toBe(true);
  });

  it('passes non-TCP packets through alone with a zero vnet header, and drops empty ones', () => {
    const udp = udpPacket(SRC, DST, 1, 2, 100);
    const ping = icmpEcho(SRC, DST, 56);
    const t = flow([1000, 1000]);
    const out = addon.coalesce([udp, Buffer.alloc(0), ping, t[0]!, udp, t[1]!]);
    expectSingles(out, [udp, ping, t[0]!, udp, t[1]!]);
    expect(addon.coalesce([])).toEqual([]);
  });

  it('from a peer that leaves TCP checksums partial: merges without checking them, and marks a lone TCP packet NEEDS_CSUM', () => {
    const sums = flow([1000, 1000, 400]);
    const partial = sums.map((p) => {
      const q = Buffer.from(p);
      q.writeUInt16BE(partialSum(q), 20 + 16);
      return q;
    });
    const [merged] = addon.coalesce(partial, true);
    expectMerged(merged!, sums);
    // Alone (a PSH head never merges), it goes out for the kernel to finish.
    const lone = Buffer.from(partial[0]!);
    lone[20 + 13] = TCP_ACK | TCP_PSH;
    lone.writeUInt16BE(partialSum(lone), 20 + 16);
    const [out] = addon.coalesce([lone], true);
    const { hdr, pkt } = unpack(out!);
    expect(hdr).toEqual({ flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_NONE, hdrLen: 20 + thlOf(lone), gsoSize: 0, csumStart: 20, csumOffset: 16 });
    expect(pkt.equals(lone)).toBe(true);
    // Non-TCP packets from such a peer keep their own checksums and a zero vnet header.
    const udp = udpPacket(SRC, DST, 1, 2, 100);
    expectSingles(addon.coalesce([udp], true), [udp]);
    // A partial segment never joins a packet whose head was fully summed, nor the other way round.
    expect(addon.coalesce([sums[0]!, ...partial.slice(1)], false)).toHaveLength(3);
    // The IP header checksum is still checked.
    const badIp = Buffer.from(partial[1]!);
    badIp[10] = badIp[10]! ^ 0xff;
    expect(addon.coalesce([partial[0]!, badIp], true)).toHaveLength(2);
  });

  it('passes garbage through unchanged, never crashing', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 120 }), { maxLength: 8 }), (arrays) => {
        const pkts = arrays.map((a) => Buffer.from(a));
        expectSingles(addon.coalesce(pkts), pkts);
      }),
      { numRuns: 500 },
    );
  });
});

describe('segment then coalesce (property)', () => {
  it('reproduces the original payload as one consistent super-packet that resegments identically', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65535 - 52 }),
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        fc.boolean(),
        (size, mssRaw, seq, id, df, psh) => {
          // At most 400 segments: the TS-side checks are the slow part.
          const mss = Math.max(mssRaw, Math.ceil(size / 400));
          const payload = randomBytes(size);
          const flags = TCP_ACK | (psh ? TCP_PSH : 0);
          const buf = superPacket({ payload, seq, id, flags, fragOffset: df ? DF : 0 }, mss);
          const segs = segment(buf, 8);
          const orig = fields(buf.subarray(VNET_HDR_LEN));
          expect(checkSegments(segs, orig, Math.min(mss, size)).equals(payload)).toBe(true);

          const out = addon.coalesce(segs);
          expect(out).toHaveLength(1);
          const { hdr, pkt } = unpack(out[0]!);
          if (segs.length === 1) {
            expectSingles(out, segs);
            return;
          }
          expectMerged(out[0]!, segs);
          expect(fields(pkt).flags).toBe(flags);
          expect(hdr.gsoSize).toBe(mss);
          // The merged packet is a valid TSO packet: segmenting it again gives the same segments.
          const again = segment(out[0]!, 8);
          expect(again.length).toBe(segs.length);
          again.forEach((s, i) => expect(s.equals(segs[i]!), `segment ${i}`).toBe(true));
        },
      ),
      { numRuns: 200 },
    );
  });
});

// The kernel's side of the contract: a super-packet from the coalescer,
// written into a vnet-hdr TUN, is accepted, forwarded, and resegmented by
// the kernel (the second TUN has no offloads) into the original segments,
// with TCP checksums that the kernel computed from our pseudo-header sum.
const FIXTURE = fileURLToPath(new URL('../integration/fixtures/offload_forward.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const run = (cmd: string, args: readonly string[], timeoutMs: number): Promise<ExecResult> => runCommand(cmd, args, { timeoutMs, allowFail: true });

describe.skipIf(rootSkipReason())('kernel accepts coalesced super-packets (needs root: a network namespace and TUN devices)', () => {
  const ns = `wof-${process.pid}-${randomBytes(2).toString('hex')}`;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    const r = await run('ip', ['netns', 'add', ns], 5000);
    if (r.code !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr}`);
  }, 10_000);

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await run('ip', ['netns', 'del', ns], 10_000);
  }, 20_000);

  it('forwards the super-packet and resegments it into the original segments', async () => {
    const sizes = [1400, 1400, 1400, 1400, 321];
    const segs = flow(sizes, { src: '198.19.81.2', dst: '198.19.82.2', id: 0xfffe });
    const udp = udpPacket('198.19.81.2', '198.19.82.2', 5000, 6000, 300);
    const input = { packets: [...segs, udp].map((p) => p.toString('hex')) };

    // `ip netns exec` execs node: the child's PID is the fixture's.
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', FIXTURE], {
      cwd: REPO_ROOT,
      env: { ...process.env, WEFT_TEST_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.end(JSON.stringify(input));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child!.kill('SIGKILL'), 30_000);
      child!.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, `fixture failed:\n${stderr}`).toBe(0);
    const result = JSON.parse(stdout) as { writes: Array<{ length: number; written: number }>; received: string[] };

    // Two TUN writes (the merged TCP packet, then the UDP one), each taken whole.
    expect(result.writes).toHaveLength(2);
    for (const w of result.writes) expect(w.written).toBe(w.length);
    expect(result.writes[0]!.length).toBe(VNET_HDR_LEN + 20 + 32 + sizes.reduce((a, b) => a + b, 0));

    // Forwarded: TTL - 1 (and so the IP checksum), otherwise byte for byte the original segments.
    const got = result.received.map((h) => Buffer.from(h, 'hex'));
    const want = [...segs, udp];
    expect(got).toHaveLength(want.length);
    got.forEach((g, i) => {
      expect(ipChecksumOk(g)).toBe(true);
      expect(g[8]).toBe(want[i]![8]! - 1);
      if (i < segs.length) expect(tcpChecksumOk(g), `kernel-made TCP checksum of segment ${i}`).toBe(true);
      const restored = Buffer.from(g);
      restored[8] = want[i]![8]!;
      restored.writeUInt16BE(want[i]!.readUInt16BE(10), 10);
      expect(restored.toString('hex'), `packet ${i}`).toBe(want[i]!.toString('hex'));
    });
  }, 60_000);
});
