// Netlink as bytes (src/host/netlink.ts, rtnetlink.ts, nft_counters.ts):
// the requests the kernel engine sends, byte for byte against what iproute2
// sends for the same job (KERNEL_ENGINE.md A.3, from strace), and the parsers
// of the kernel's answers, on crafted replies and by property.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerText, attr, encodeRequests, nested, parseAttrs, parseMessages, sortAnswers, strAttr, u32Attr } from '../../src/host/netlink.js';
import { counterDumpRequest, parseCounter } from '../../src/host/nft_counters.js';
import { acceptLocalRequest, delRouteRequest, newAddrRequest, newRouteRequest, newVxlanGpeRequest, parseAddr, parseLink, parseRoute, RT_SCOPE_HOST, setLinkRequest } from '../../src/host/rtnetlink.js';
import { parseIp } from '../../src/net/ipv4.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A request as the kernel reads it: header type and flags, and the body after the 16-byte header. */
function wire(r: { type: number; flags: number; body: Buffer }): { type: number; flags: number; body: string } {
  const b = encodeRequests([r], 7);
  expect(b.readUInt32LE(0)).toBe(16 + r.body.length);
  expect(b.readUInt32LE(8)).toBe(7);
  return { type: b.readUInt16LE(4), flags: b.readUInt16LE(6), body: b.subarray(16, b.readUInt32LE(0)).toString('hex') };
}

/** A reply message as the kernel would send it. */
function message(type: number, body: Buffer, seq = 1, flags = 0): Buffer {
  const b = Buffer.alloc(16 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  body.copy(b, 16);
  return b;
}

describe('rtnetlink requests', () => {
  it('creates the device as `ip link add g5 type vxlan gpe external dstport 4790` does, learning off', () => {
    expect(wire(newVxlanGpeRequest({ name: 'g5', port: 4790 }))).toEqual({
      type: 16, // RTM_NEWLINK
      flags: 0x605, // REQUEST | ACK | EXCL | CREATE
      body: hex(`
        00000000 00000000 00000000 00000000
        0700 0300 67350000
        3000 1200
          0900 0100 7678 6c61 6e000000
          2000 0200
            0400 1b00
            0500 1900 01000000
            0500 0700 00000000
            0600 0f00 12b60000`).toString('hex'),
    });
  });

  it('adds an encap route as `ip route add 198.19.2.0/24 encap ip id 1 dst 198.18.0.2 csum dev g5` does, replacing, with weft\'s protocol', () => {
    const r = newRouteRequest({ dst: parseIp('198.19.2.0'), len: 24, type: 'unicast', protocol: 87, oif: 3, encap: { vni: 1, remote: parseIp('198.18.0.2') } });
    // iproute2's bytes (A.3) with protocol 87 for boot (3), no TTL attribute (ours: the route's hop limit), and REPLACE for EXCL.
    expect(wire(r)).toEqual({
      type: 24,
      flags: 0x505,
      body: hex(`
        0218 0000 fe57 fd01 00000000
        0800 0100 c6130200
        2000 1680
          0c00 0100 00000000 00000001
          0800 0200 c6120002
          0600 0600 00010000
        0600 1500 02000000
        0800 0400 03000000`).toString('hex'),
    });
  });

  it('deletes only the route of weft\'s protocol, of any type, scope or device; throws routes carry no device', () => {
    expect(wire(delRouteRequest({ dst: parseIp('198.19.2.0'), len: 24, protocol: 87 }))).toEqual({ type: 25, flags: 0x5, body: hex('0218 0000 fe57 ff00 00000000 0800 0100 c6130200').toString('hex') });
    const t = wire(newRouteRequest({ dst: parseIp('198.19.0.0'), len: 16, type: 'throw', protocol: 87 }));
    expect(t.body).toBe(hex('0210 0000 fe57 0009 00000000 0800 0100 c6130000').toString('hex'));
  });

  it('sets accept_local and link state by name, nested as the kernel wants, and refuses names no device can have', () => {
    expect(wire(acceptLocalRequest('weft0')).body).toBe(
      hex('00000000 00000000 00000000 00000000 0a00 0300 77656674 30000000 1400 1a80 1000 0280 0c00 0180 0800 1700 01000000').toString('hex'),
    );
    expect(wire(setLinkRequest('weft0', { up: true })).body.slice(0, 32)).toBe(hex('00000000 00000000 01000000 01000000').toString('hex'));
    expect(wire(setLinkRequest('weft0', { mtu: 1464 })).body).toContain(hex('0800 0400 b8050000').toString('hex'));
    // `ip link set dev weft0 mtu 1464 gso_max_segs 64`: IFLA_MTU, then IFLA_GSO_MAX_SEGS (40).
    expect(wire(setLinkRequest('weft0', { mtu: 1464, gsoMaxSegs: 64 })).body).toContain(hex('0800 0400 b8050000 0800 2800 40000000').toString('hex'));
    for (const bad of ['', 'a'.repeat(16), 'we\0ft', 'a/b', 'a b']) expect(() => setLinkRequest(bad, { up: true })).toThrow(/not a valid interface name/);
  });

  it('asks nftables for the named counters of one table', () => {
    expect(wire(counterDumpRequest('weft_kernel'))).toEqual({ type: (10 << 8) | 19, flags: 0x301, body: hex('02000000 1000 0100 77656674 5f6b6572 6e656c00 0800 0300 00000001').toString('hex') });
  });
});

describe('netlink replies', () => {
  it('sorts acks, refusals with the kernel\'s words, dump parts and their end to the requests they answer', () => {
    const ack = (seq: number, errno: number, msg?: string): Buffer => {
      const err = Buffer.alloc(4 + 16);
      err.writeInt32LE(-errno, 0);
      const tlv = msg === undefined ? Buffer.alloc(0) : strAttr(1, msg);
      return message(2, Buffer.concat([err, tlv]), seq, msg === undefined ? 0 : 0x200);
    };
    const replies = parseMessages(Buffer.concat([message(16, Buffer.alloc(16), 2, 0x2), message(16, Buffer.alloc(16), 2, 0x12), ack(1, 0), message(3, Buffer.alloc(4), 2), ack(3, 98, 'Address in use'), ack(9, 1)]));
    const [a, b, c] = sortAnswers(3, replies);
    expect(a).toEqual({ error: 0, messages: [], interrupted: false });
    expect(b!.error).toBe(0);
    expect(b!.messages).toHaveLength(2);
    expect(b!.interrupted).toBe(true);
    expect(c).toEqual({ error: 98, extack: 'Address in use', messages: [], interrupted: false });
    expect(answerText(c!)).toBe('EADDRINUSE (Address in use)');
    expect(answerText({ error: 19, messages: [], interrupted: false })).toBe('ENODEV');
  });

  it('refuses a message or attribute longer than what holds it', () => {
    expect(parseMessages(Buffer.concat([message(16, Buffer.alloc(4)), Buffer.alloc(3)]))).toHaveLength(1);
    expect(() => parseMessages(message(16, Buffer.alloc(4)).subarray(0, 18))).toThrow(/does not parse/);
    const long = message(16, Buffer.alloc(4));
    long.writeUInt32LE(400, 0);
    expect(() => parseMessages(long)).toThrow(/does not parse/);
    const a = attr(1, Buffer.alloc(4));
    a.writeUInt16LE(40, 0);
    expect(() => parseAttrs(a)).toThrow(/does not parse/);
  });

  it('reads back every attribute written, nested or not, whatever its payload', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 0x3fff }), fc.uint8Array({ maxLength: 40 }), fc.boolean()), { maxLength: 12 }), (attrs) => {
        const last = new Map(attrs.map(([t, p]) => [t, Buffer.from(p).toString('hex')]));
        const bytes = Buffer.concat(attrs.map(([t, p, n]) => (n ? nested(t, [Buffer.from(p)]) : attr(t, p))));
        const back = parseAttrs(bytes);
        expect(new Map([...back].map(([t, p]) => [t, p.toString('hex')]))).toEqual(last);
      }),
    );
  });

  it('parses a route and a link as the kernel dumps them', () => {
    const route = newRouteRequest({ dst: parseIp('198.19.2.0'), len: 24, type: 'unicast', protocol: 87, oif: 3, encap: { vni: 7, remote: parseIp('198.18.0.2') } });
    expect(parseRoute({ type: 24, flags: 0, seq: 1, body: route.body })).toEqual({ dst: parseIp('198.19.2.0'), len: 24, type: 'unicast', protocol: 87, oif: 3, encap: { vni: 7, remote: parseIp('198.18.0.2') } });
    // Another table's route is none of weft's: the table in the header (local, 255), or past 255 in RTA_TABLE behind RT_TABLE_COMPAT (252).
    const inTable = (byte: number, rtaTable?: number): unknown => {
      const b = Buffer.from(route.body);
      b[4] = byte;
      return parseRoute({ type: 24, flags: 0, seq: 1, body: rtaTable === undefined ? b : Buffer.concat([b, u32Attr(15, rtaTable)]) });
    };
    expect(inTable(255)).toBeUndefined();
    expect(inTable(252, 1000)).toBeUndefined();
    expect(inTable(252, 254)).toMatchObject({ dst: parseIp('198.19.2.0'), len: 24 });
    const stats = Buffer.alloc(200);
    [5, 6, 500, 600, 1, 2, 3, 4].forEach((v, i) => stats.writeBigUInt64LE(BigInt(v), i * 8));
    const ifi = Buffer.alloc(16);
    ifi.writeInt32LE(9, 4);
    ifi.writeUInt32LE(0x1 | 0x10000, 8);
    const data = [attr(27, Buffer.alloc(0)), attr(25, Buffer.from([1])), attr(7, Buffer.from([0])), attr(15, Buffer.from([0x12, 0xb6])), attr(30, Buffer.from([1]))];
    const body = Buffer.concat([ifi, strAttr(3, 'weft0'), u32Attr(4, 1464), nested(18, [attr(1, Buffer.from('vxlan')), nested(2, data)]), attr(23, stats)]);
    expect(parseLink({ type: 16, flags: 0, seq: 1, body })).toEqual({
      index: 9,
      name: 'weft0',
      up: true,
      mtu: 1464,
      kind: 'vxlan',
      vxlan: { port: 4790, gpe: true, external: true, vnifilter: true, learning: false },
      stats: { rxPackets: 5, txPackets: 6, rxBytes: 500, txBytes: 600, rxErrors: 1, txErrors: 2, rxDropped: 3, txDropped: 4 },
    });
  });

  it('parses an IPv4 address with its scope as the kernel dumps it, and nothing of another family', () => {
    const body = Buffer.from(newAddrRequest({ index: 4, ip: parseIp('127.0.0.1'), prefixLen: 8 }).body);
    body[3] = RT_SCOPE_HOST;
    expect(parseAddr({ type: 20, flags: 0, seq: 1, body })).toEqual({ index: 4, ip: parseIp('127.0.0.1'), prefixLen: 8, scope: 254 });
    body[3] = 0;
    expect(parseAddr({ type: 20, flags: 0, seq: 1, body })).toMatchObject({ scope: 0 });
    body[0] = 10;
    expect(parseAddr({ type: 20, flags: 0, seq: 1, body })).toBeUndefined();
  });

  it('reads an nftables counter object, and nothing from another object', () => {
    const be64 = (v: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(v));
      return b;
    };
    const obj = (type: number): Buffer => Buffer.concat([Buffer.from([2, 0, 0, 0]), strAttr(1, 'weft_kernel'), strAttr(2, 'outside_drop_vni'), attr(3, Buffer.from([0, 0, 0, type])), nested(4, [attr(1, be64(840)), attr(2, be64(20))])]);
    expect(parseCounter({ type: (10 << 8) | 18, flags: 0, seq: 1, body: obj(1) })).toEqual({ name: 'outside_drop_vni', packets: 20, bytes: 840 });
    expect(parseCounter({ type: (10 << 8) | 18, flags: 0, seq: 1, body: obj(2) })).toBeUndefined();
  });
});
