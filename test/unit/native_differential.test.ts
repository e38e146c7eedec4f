// The native per-packet code against the js engine's, its executable
// specification: the same packets must get the same verdicts and the same
// drop counters, inside and outside. Runs in-process, no root, no I/O.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { C, COUNTER_NAMES } from '../../src/dataplane/counters.js';
import { classifyInside } from '../../src/dataplane/inside.js';
import { acceptOutside } from '../../src/dataplane/outside.js';
import { ICMP_ERROR_MAX, ICMP_FRAG_NEEDED, ICMP_NET_UNREACHABLE, flowHash, icmpErrorLength, writeIcmpUnreachable } from '../../src/wire/ipv4_packet.js';
import { ENCAP_OVERHEAD, NATIVE_MAX_TSO_SEGMENTS, PEER_TCP_CSUM_PARTIAL, VXLAN_GPE_HEADER_LEN } from '../../src/constants.js';
import { ICMP_BURST, ICMP_PER_SECOND } from '../../src/dataplane/icmp_budget.js';
import { loadAddon } from '../../src/host/addon.js';
import { parseCidr, parseIp } from '../../src/net/ipv4.js';
import { type Peer, RouteTable } from '../../src/routes/route_table.js';
import { gpe, icmpEcho, ipv4, udpPacket } from '../harness/packets.js';
import { loadTestAddon } from '../harness/test_addon.js';

const addon = loadTestAddon();
const net = parseCidr('198.19.0.0/16');
const self = parseCidr('198.19.2.0/24');
// n7 publishes a WireGuard key, and so does this node: that pair speaks WireGuard, and n7's VXLAN-GPE is refused.
const peers: Peer[] = [1, 3, 7, 200].map((i) => ({
  subnet: parseCidr(`198.19.${i}.0/24`),
  node: `n${i}`,
  ip: parseIp(`198.18.0.${i}`),
  port: 4790 + i,
  ...(i === 7 ? { wgKey: new Uint8Array(32).fill(7), wgPort: 51820 } : {}),
}));
const table = RouteTable.build(net, 24, peers, { wireguard: true, plaintextRefused: false });
/** wireguard-only: n1, n3 and n200 publish no key, so nothing reaches them and nothing from them is taken. */
const refusing = RouteTable.build(net, 24, peers, { wireguard: true, plaintextRefused: true });
const nativeSelf = { base: self.base, len: self.len, vni: 1 };

function both(direction: 0 | 1, packets: Buffer[], sources: number[], t = table): { js: number[]; native: number[]; jsCounters: number[]; nativeCounters: number[] } {
  const jsC = new Float64Array(COUNTER_NAMES.length);
  const js = packets.map((p, i) => (direction === 0 ? classifyInside(p, 0, p.length, t, jsC) : Number(acceptOutside(p, 0, p.length, sources[i]!, t, self, 1, jsC))));
  const nativeC = new BigUint64Array(COUNTER_NAMES.length);
  const native = Array.from(addon.classifyBatch(direction, t.arrays(), nativeSelf, packets, Uint32Array.from(sources), nativeC));
  return { js, native, jsCounters: Array.from(jsC), nativeCounters: Array.from(nativeC, Number) };
}

const addresses = fc.constantFrom('198.19.1.5', '198.19.2.9', '198.19.2.0', '198.19.2.255', '198.19.3.1', '198.19.9.9', '198.19.200.4', '198.18.0.1', '198.18.0.3', '10.0.0.1', '224.0.0.5', '0.0.0.0');
const senders = fc.constantFrom(...peers.map((p) => p.ip), parseIp('198.18.0.99'), 0);
const mutation = fc.record({ at: fc.nat(60), value: fc.nat(255) });

/** Well-formed packets, then a few bytes changed: exercises every check, not only the first. */
const packet = fc
  .tuple(addresses, addresses, fc.constantFrom(1, 6, 17, 3), fc.nat(64), fc.integer({ min: 0, max: 3 }), fc.array(mutation, { maxLength: 3 }), fc.nat(40))
  .map(([src, dst, proto, ttl, shape, muts, cut]) => {
    const p = shape === 0 ? icmpEcho(src, dst, 8, ttl) : shape === 1 ? udpPacket(src, dst, 1000 + ttl, 53) : ipv4({ src, dst, proto, ttl });
    for (const m of muts) if (m.at < p.length) p[m.at] = m.value;
    return cut > 30 ? p.subarray(0, cut % (p.length + 1)) : p;
  });

describe('native engine vs the js specification (in-process)', () => {
  it('exports the same counters in the same order', () => {
    expect(loadAddon().COUNTER_NAMES).toEqual(COUNTER_NAMES);
  });

  it('classifies TUN packets alike, wireguard-only included', () => {
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 40 }), fc.boolean(), (packets, wgOnly) => {
        const r = both(0, packets, packets.map(() => 0), wgOnly ? refusing : table);
        expect(r.native).toEqual(r.js);
        expect(r.nativeCounters).toEqual(r.jsCounters);
      }),
      { numRuns: 300 },
    );
  });

  it('accepts and drops received datagrams alike, by the same reasons', () => {
    const datagram = fc.tuple(packet, fc.constantFrom(0x0c, 0x08, 0x0d, 0x2c, 0xcc), fc.constantFrom(1, 1, 2), fc.constantFrom(1, 1, 7)).map(([p, flags, vni, proto]) => gpe(p, vni, flags, proto));
    fc.assert(
      fc.property(fc.array(fc.tuple(datagram, senders), { minLength: 1, maxLength: 40 }), fc.boolean(), (items, wgOnly) => {
        const r = both(1, items.map(([d]) => d), items.map(([, s]) => s), wgOnly ? refusing : table);
        expect(r.native).toEqual(r.js);
        expect(r.nativeCounters).toEqual(r.jsCounters);
      }),
      { numRuns: 300 },
    );
  });

  it('shares the constants both sides depend on', () => {
    expect(addon.CONSTANTS).toEqual({
      maxTsoSegments: NATIVE_MAX_TSO_SEGMENTS,
      gpeHeaderLen: VXLAN_GPE_HEADER_LEN,
      encapOverhead: ENCAP_OVERHEAD,
      icmpErrorMax: ICMP_ERROR_MAX,
      icmpBurst: ICMP_BURST,
      icmpPerSecond: ICMP_PER_SECOND,
      peerTcpCsumPartial: PEER_TCP_CSUM_PARTIAL,
    });
  });

  it('writes the same ICMP errors, byte for byte, net-unreachable and fragmentation-needed', () => {
    fc.assert(
      fc.property(packet, fc.constantFrom(ICMP_NET_UNREACHABLE, ICMP_FRAG_NEEDED), fc.integer({ min: 0, max: 65535 }), (p, code, mtu) => {
        if (p.length < 20) return;
        const from = parseIp('198.19.2.0');
        const ts = Buffer.alloc(icmpErrorLength(p, 0, p.length));
        const n = writeIcmpUnreachable(ts, p, 0, p.length, from, code, mtu);
        expect(addon.icmpUnreachable(Buffer.from(p), from, code, mtu).toString('hex')).toBe(ts.subarray(0, n).toString('hex'));
      }),
      { numRuns: 500 },
    );
  });

  it('hashes flows alike, short and fragmented packets included (the outer source port)', () => {
    fc.assert(
      fc.property(packet, fc.integer({ min: 20, max: 64 }), (p, cut) => {
        if (p.length < 20) return;
        const q = p.subarray(0, Math.min(p.length, cut));
        expect(addon.flowHash(Buffer.from(q))).toBe(flowHash(q, 0, q.length));
      }),
      { numRuns: 500 },
    );
  });

  it('agrees on every input of the fuzz corpora (native/fuzz), split as the worker splits them', () => {
    const corpus = (target: string): Buffer[] => {
      const dir = fileURLToPath(new URL(`../../native/fuzz/corpus/${target}/`, import.meta.url));
      return readdirSync(dir).map((f) => readFileSync(join(dir, f)));
    };
    const fuzzSources = ['198.18.0.1', '198.18.0.3', '198.18.0.7', '198.18.0.99'].map(parseIp);
    const datagrams: Buffer[] = [];
    const sources: number[] = [];
    for (const input of corpus('outside')) {
      const buf = input.subarray(3);
      const seg = input.readUInt16BE(1) || buf.length;
      for (let off = 0; off < buf.length; off += seg) {
        datagrams.push(buf.subarray(off, Math.min(buf.length, off + seg)));
        sources.push(fuzzSources[input[0]! & 3]!);
      }
    }
    const outside = both(1, datagrams, sources);
    expect(outside.native).toEqual(outside.js);
    expect(outside.nativeCounters).toEqual(outside.jsCounters);
    expect(outside.js.filter((v) => v === 1).length).toBeGreaterThan(0);
    const packets = corpus('inside').map((b) => b.subarray(10));
    const inside = both(0, packets, packets.map(() => 0));
    expect(inside.native).toEqual(inside.js);
    expect(inside.nativeCounters).toEqual(inside.jsCounters);
  });

  it('agrees on the hand-picked cases too, and they hit every outside drop reason', () => {
    const good = ipv4({ src: '198.19.1.5', dst: '198.19.2.7' });
    const from1 = peers[0]!.ip;
    const cases: [Buffer, number][] = [
      [Buffer.alloc(3), from1],
      [gpe(good, 1, 0x08), from1],
      [gpe(good, 9), from1],
      [gpe(good, 1, 0x0c, 2), from1],
      [gpe(good), parseIp('198.18.0.99')],
      [gpe(good.subarray(0, 10)), from1],
      [gpe(ipv4({ src: '198.19.3.5', dst: '198.19.2.7' })), from1],
      [gpe(ipv4({ src: '198.19.1.5', dst: '198.19.4.7' })), from1],
      [gpe(ipv4({ src: '198.19.1.5', dst: '198.19.2.7', ttl: 0 })), from1],
      [gpe(good), from1],
      // The sending node's own underlay address is a source it may use (its replies to pods).
      [gpe(ipv4({ src: '198.18.0.1', dst: '198.19.2.7' })), from1],
      // Our subnet's network address is this node's overlay address (replies come there); its broadcast is no one's.
      [gpe(ipv4({ src: '198.19.1.5', dst: '198.19.2.0' })), from1],
      [gpe(ipv4({ src: '198.19.1.5', dst: '198.19.2.255' })), from1],
      // n7 and this node both publish keys: their pair speaks WireGuard, never VXLAN-GPE.
      [gpe(ipv4({ src: '198.19.7.5', dst: '198.19.2.7' })), peers[2]!.ip],
    ];
    const r = both(1, cases.map(([d]) => d), cases.map(([, s]) => s));
    expect(r.native).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]);
    expect(r.native).toEqual(r.js);
    expect(r.nativeCounters).toEqual(r.jsCounters);
    // The VXLAN-GPE path's reasons (the WireGuard port's have their own tests: the encrypted differential test).
    const gpeReasons = COUNTER_NAMES.filter((n) => n.startsWith('outside_drop_') && !n.startsWith('outside_drop_wg_') && n !== 'outside_drop_tun_write');
    for (const k of gpeReasons) expect(r.nativeCounters[C[k]], k).toBe(k === 'outside_drop_not_local' ? 2 : 1);
  });
});
