import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIp, subnetAt } from '../../src/net/ipv4.js';
import { NO_PEER, type Peer, RouteTable } from '../../src/routes/route_table.js';

const net = parseCidr('198.19.0.0/16');

function peer(i: number): Peer {
  return { subnet: subnetAt(net, 24, i), node: `n${i}`, ip: parseIp(`198.18.0.${i}`), port: 4790 + i };
}

describe('route table', () => {
  it('finds the owner of every address of a leased subnet, and nobody for the rest', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 254 }), { maxLength: 40 }), fc.nat(0xffffffff), (slots, probe) => {
        const t = RouteTable.build(net, 24, slots.map(peer));
        const i = t.lookup(probe);
        const slot = (probe >>> 8) & 0xff;
        const inNet = probe >>> 16 === 0xc613;
        if (inNet && slots.includes(slot)) {
          expect(i).not.toBe(NO_PEER);
          expect(t.peers[i]!.ip).toBe(parseIp(`198.18.0.${slot}`));
          expect(t.peerPortAt(i)).toBe(4790 + slot);
          expect(t.peerIpAt(i)).toBe(parseIp(`198.18.0.${slot}`));
        } else expect(i).toBe(NO_PEER);
      }),
    );
  });

  it('knows senders by underlay address and checks what they may source', () => {
    const t = RouteTable.build(net, 24, [peer(2), peer(3)]);
    expect(t.flagsOfSender(parseIp('198.18.0.2'))).toBe(0);
    expect(t.flagsOfSender(parseIp('198.18.0.9'))).toBeUndefined();
    expect(t.senderOwns(parseIp('198.18.0.2'), parseIp('198.19.2.77'))).toBe(true);
    expect(t.senderOwns(parseIp('198.18.0.2'), parseIp('198.19.3.77'))).toBe(false);
    expect(t.senderOwns(parseIp('198.18.0.2'), parseIp('10.0.0.1'))).toBe(false);
    // A node's own underlay address, but only from that node.
    expect(t.senderOwns(parseIp('198.18.0.2'), parseIp('198.18.0.2'))).toBe(true);
    expect(t.senderOwns(parseIp('198.18.0.2'), parseIp('198.18.0.3'))).toBe(false);
  });

  it('refuses inconsistent tables with the culprit named', () => {
    expect(() => RouteTable.build(net, 24, [peer(2), { ...peer(2), node: 'dup' }])).toThrow(/two peers claim 198.19.2.0\/24/);
    expect(() => RouteTable.build(net, 24, [{ ...peer(2), subnet: parseCidr('10.0.0.0/24') }])).toThrow(/n2 subnet 10.0.0.0\/24/);
    expect(() => RouteTable.build(net, 16, [])).toThrow(/does not fit/);
    expect(() => RouteTable.build(parseCidr('10.0.0.0/8'), 30, [])).toThrow(/does not fit/);
  });

  it('with() gives what build() of the resulting peers gives, for any removals and additions', () => {
    const op = fc.record({ remove: fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 8 }), add: fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 8 }), port: fc.integer({ min: 1, max: 9 }) });
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), fc.array(op, { maxLength: 6 }), (start, ops) => {
        const at = (i: number, port = 0): Peer => ({ ...peer(i), port: 4790 + i + port, tcpCsumPartial: (i + port) % 2 === 0 });
        let t = RouteTable.build(net, 24, start.map((i) => at(i)));
        const model = new Map(start.map((i) => [i, at(i)]));
        for (const o of ops) {
          // A /25 and a subnet outside the network are not peers of the table: removing them drops nothing.
          t = t.with([...o.remove.map((i) => subnetAt(net, 24, i)), parseCidr(`198.19.${o.remove[0] ?? 0}.128/25`), parseCidr('10.0.0.0/24')], o.add.map((i) => at(i, o.port)));
          for (const i of o.remove) model.delete(i);
          for (const i of o.add) model.set(i, at(i, o.port));
        }
        const want = RouteTable.build(net, 24, [...model.values()]);
        expect(t.peers.length).toBe(want.peers.length);
        for (let i = 0; i < 256; i++) {
          const ip = subnetAt(net, 24, i).base + 7;
          const [got, exp] = [t.lookup(ip), want.lookup(ip)];
          expect(got === NO_PEER).toBe(exp === NO_PEER);
          if (exp === NO_PEER) continue;
          expect(t.peers[got]).toEqual(want.peers[exp]);
          expect([t.peerIpAt(got), t.peerPortAt(got)]).toEqual([want.peerIpAt(exp), want.peerPortAt(exp)]);
          expect(t.arrays().peerFlags[got]).toBe(want.arrays().peerFlags[exp]);
        }
      }),
    );
  });

  it('with() refuses a peer outside the network, naming it, and leaves the table it was called on as it was', () => {
    const t = RouteTable.build(net, 24, [peer(2)]);
    expect(() => t.with([], [{ ...peer(3), subnet: parseCidr('10.0.0.0/24') }])).toThrow(/n3 subnet 10.0.0.0\/24/);
    expect(t.peers).toEqual([peer(2)]);
    expect(t.lookup(parseIp('198.19.2.9'))).toBe(0);
  });

  it('handles a network at the top of the address space', () => {
    const top = parseCidr('255.255.0.0/16');
    const t = RouteTable.build(top, 24, [{ subnet: parseCidr('255.255.255.0/24'), node: 'x', ip: 1, port: 1 }]);
    expect(t.lookup(parseIp('255.255.255.255'))).toBe(0);
    expect(t.lookup(parseIp('255.255.254.1'))).toBe(NO_PEER);
    expect(formatIp(t.peers[0]!.subnet.base)).toBe('255.255.255.0');
  });
});
