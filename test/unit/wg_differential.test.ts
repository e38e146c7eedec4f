// The native engine's WireGuard per-packet code against the TypeScript, its
// executable specification: transport messages sealed to the same bytes
// (same keys, counters, padding), and the same datagrams on the WireGuard
// port (sealed ones, replayed, flipped, expired, from strangers, handshake
// messages with good and bad mac1, garbage, empty ones) given the same
// verdicts and the same drop counters, replay windows included, whether the
// native side takes them one by one or as the UDP GRO trains a worker
// splits. In-process, no root, no I/O.

import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { C, COUNTER_NAMES } from '../../src/dataplane/counters.js';
import { acceptInner } from '../../src/dataplane/outside.js';
import { openWireguard, precheckWireguard } from '../../src/dataplane/wireguard_outside.js';
import { parseCidr, parseIp } from '../../src/net/ipv4.js';
import { type Peer, RouteTable } from '../../src/routes/route_table.js';
import { mac1Key, writeMacs } from '../../src/wireguard/cookie.js';
import { KEEPALIVE_SIZE, MSG_TRANSPORT } from '../../src/wireguard/constants.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { MSG_MALFORMED } from '../../src/wireguard/messages.js';
import { ReplayWindow } from '../../src/wireguard/replay.js';
import type { Keypair } from '../../src/wireguard/sessions.js';
import { sealTransport, transportLength } from '../../src/wireguard/transport.js';
import { icmpEcho, ipv4, udpPacket } from '../harness/packets.js';
import { type TestKeypair, loadTestAddon } from '../harness/test_addon.js';

const addon = loadTestAddon();
const net = parseCidr('198.19.0.0/16');
const self = parseCidr('198.19.2.0/24');
const ip = (i: number): number => parseIp(`198.18.0.${i}`);
// n1 and n3 publish keys (and so does this node); n7 does not.
const peers: Peer[] = [1, 3, 7].map((i) => ({
  subnet: parseCidr(`198.19.${i}.0/24`),
  node: `n${i}`,
  ip: ip(i),
  port: 4790,
  ...(i === 7 ? {} : { wgKey: generateKeyPair().publicKey, wgPort: 51820 }),
}));
const table = RouteTable.build(net, 24, peers, { wireguard: true, plaintextRefused: false });
const ours = generateKeyPair();
const ourMac1 = mac1Key(ours.publicKey);

const spec = (localIndex: number, peer: number, createdAgoMs: number, initiator: boolean): TestKeypair => ({
  localIndex,
  remoteIndex: localIndex + 7,
  sendKey: randomBytes(32),
  recvKey: randomBytes(32),
  initiator,
  peerIp: ip(peer),
  peerPort: 51820,
  createdAgoMs,
});
/** Sessions with n1 (current, and an expired previous one) and n3 (a responder's next, unconfirmed). */
const KEYPAIRS = [spec(1111, 1, 1000, true), spec(3333, 1, 181_000, true), spec(2222, 3, 500, false)];
const SLOTS = Uint32Array.from([0, 1111, 3333, 2222, 0, 0, 0, 0, 0]);

/** The TypeScript's verdicts on the datagrams, with fresh keypairs (replay windows) like the native call's. */
function tsAccept(datagrams: Buffer[], sources: number[]): { verdicts: number[]; counters: number[] } {
  const now = Date.now();
  const kps = new Map<number, Keypair>(
    KEYPAIRS.map((k) => [
      k.localIndex,
      { ...k, peer: { ip: k.peerIp }, createdAt: now - k.createdAgoMs, confirmed: k.initiator, sendCounter: 0, replay: new ReplayWindow(), lastDataSent: 0, lastDataReceived: 0, lastSent: 0, lastReceived: 0 } as unknown as Keypair,
    ]),
  );
  const c = new Float64Array(COUNTER_NAMES.length);
  const verdicts = datagrams.flatMap((dg, i) => {
    const src = sources[i]!;
    const type = precheckWireguard(dg, 0, dg.length, src, table, ourMac1, c);
    if (type === MSG_MALFORMED) return [0, 0];
    if (type !== MSG_TRANSPORT) return [1, 0];
    const plain = openWireguard(dg, 0, dg.length, src, (x) => kps.get(x), now, c);
    if (!plain) return [0, 0];
    if (dg.length === KEEPALIVE_SIZE) return [2, 0];
    if (!acceptInner(plain, 0, plain.length, src, table, self, c)) return [0, 0];
    return [3, plain.readUInt16BE(2)];
  });
  return { verdicts, counters: Array.from(c) };
}

/** The native verdicts on received buffers, each one datagram or, with `segments`, a GRO train of datagrams of that size. */
function nativeAccept(buffers: Buffer[], sources: number[], segments?: number[]): { verdicts: number[]; counters: number[] } {
  const c = new BigUint64Array(COUNTER_NAMES.length);
  const wg = { mac1Key: ourMac1, padLimit: 1440, slots: SLOTS, keypairs: KEYPAIRS };
  const bufs = buffers.map((d) => Buffer.from(d));
  const v = addon.wgAccept(table.arrays(), wg, { base: self.base, len: self.len }, bufs, Uint32Array.from(sources), c, segments && Uint32Array.from(segments));
  return { verdicts: Array.from(v), counters: Array.from(c, Number) };
}

/** A transport message as `k`'s peer seals it to us. */
function sealed(k: TestKeypair, counter: number, packet: Uint8Array): Buffer {
  const out = Buffer.alloc(transportLength(packet.length, 1440));
  return out.subarray(0, sealTransport(out, k.recvKey, k.localIndex, counter, packet, 0, packet.length, 1440));
}

/** A handshake message of `type` (1 or 2), random but for its type, with mac1 for us when `good`. */
function handshake(type: 1 | 2, good: boolean): Buffer {
  const msg = randomBytes(type === 1 ? 148 : 92);
  msg.writeUInt32LE(type, 0);
  writeMacs(msg, good ? ourMac1 : mac1Key(randomBytes(32)), undefined);
  return msg;
}

const addrs = fc.constantFrom('198.19.1.5', '198.19.3.5', '198.19.2.9', '198.19.2.255', '198.19.7.1', '198.18.0.1', '10.0.0.1');
const inner = fc
  .tuple(addrs, addrs, fc.integer({ min: 0, max: 2 }), fc.nat(64))
  .map(([src, dst, shape, ttl]) => (shape === 0 ? icmpEcho(src, dst, 8 + ttl, ttl) : shape === 1 ? udpPacket(src, dst, 1000, 53, ttl) : ipv4({ src, dst, ttl })));
const datagram = fc.oneof(
  fc.tuple(fc.constantFrom(0, 1, 2), fc.integer({ min: 0, max: 12 }), inner, fc.nat(10)).map(([k, counter, p, flip]) => {
    const d = sealed(KEYPAIRS[k]!, counter, p);
    if (flip < 2) d[16 + flip * 7] = d[16 + flip * 7]! ^ 0x20; // a bit of ciphertext flipped
    return d;
  }),
  fc.tuple(fc.constantFrom(0, 2), fc.integer({ min: 0, max: 12 })).map(([k, counter]) => sealed(KEYPAIRS[k]!, counter, new Uint8Array(0))),
  fc.tuple(fc.constantFrom<1 | 2>(1, 2), fc.boolean()).map(([t, good]) => handshake(t, good)),
  fc.uint8Array({ maxLength: 160 }).map((b) => Buffer.from(b)),
  fc.constantFrom(Buffer.from([4, 0, 0, 0, ...randomBytes(40)]), Buffer.from([3, 0, 0, 0, ...randomBytes(60)]), Buffer.from([1, 1, 0, 0, ...randomBytes(144)])),
);
const source = fc.constantFrom(ip(1), ip(1), ip(3), ip(7), ip(99));
/**
 * A UDP GRO train as the kernel hands one over: datagrams from one source,
 * all `seg` bytes but the last, which may be shorter (a keepalive). Each is
 * one packet sealed with a counter (repeats: replays), a bit flipped in
 * some, others replaced by garbage of the same length.
 */
const train = fc
  .tuple(fc.constantFrom(0, 1, 2), inner, fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.nat(10)), { minLength: 1, maxLength: 8 }), fc.boolean(), source)
  .map(([k, p, seals, keepalive, src]) => {
    const dgs = seals.map(([counter, flip]) => {
      const d = sealed(KEYPAIRS[k]!, counter, p);
      if (flip < 2) d[16 + flip * 7] = d[16 + flip * 7]! ^ 0x20;
      return flip === 2 ? randomBytes(d.length) : d;
    });
    if (keepalive) dgs.push(sealed(KEYPAIRS[k]!, 13, new Uint8Array(0)));
    return { dgs, src, seg: dgs[0]!.length };
  });

describe('native WireGuard vs the TypeScript specification (in-process)', () => {
  it('seals transport messages to the same bytes, padding included', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500, size: 'max' }), fc.nat(2 ** 40), fc.integer({ min: 0, max: 1500 }), (p, counter, pad) => {
        const key = randomBytes(32);
        const out = Buffer.alloc(transportLength(p.length, pad));
        const n = sealTransport(out, key, 0xdeadbeef, counter, p, 0, p.length, pad);
        expect(addon.wgSeal(key, 0xdeadbeef, counter, Buffer.from(p), pad).toString('hex')).toBe(out.subarray(0, n).toString('hex'));
      }),
      { numRuns: 200 },
    );
  });

  it('gives every datagram on the WireGuard port the same verdict and the same drop counters, replay windows included', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(datagram, source), { minLength: 1, maxLength: 40 }), (items) => {
        const dgs = items.map(([d]) => d);
        const srcs = items.map(([, s]) => s);
        const ts = tsAccept(dgs, srcs);
        const native = nativeAccept(dgs, srcs);
        expect(native.verdicts).toEqual(ts.verdicts);
        expect(native.counters).toEqual(ts.counters);
      }),
      { numRuns: 300 },
    );
  });

  it('splits UDP GRO trains into the datagrams the TypeScript takes one by one: same verdicts, same counters', () => {
    fc.assert(
      fc.property(fc.array(train, { minLength: 1, maxLength: 6 }), (trains) => {
        const ts = tsAccept(trains.flatMap((t) => t.dgs), trains.flatMap((t) => t.dgs.map(() => t.src)));
        const native = nativeAccept(trains.map((t) => Buffer.concat(t.dgs)), trains.map((t) => t.src), trains.map((t) => t.seg));
        expect(native).toEqual(ts);
      }),
      { numRuns: 200 },
    );
  });

  it('agrees on the hand-picked cases, and they hit every reason a datagram is refused', () => {
    const [cur, old, next] = KEYPAIRS as [TestKeypair, TestKeypair, TestKeypair];
    const good = icmpEcho('198.19.1.5', '198.19.2.7', 8);
    const cases: [Buffer, number][] = [
      [sealed(cur, 0, good), ip(1)], // data
      [sealed(cur, 0, good), ip(1)], // replayed
      [sealed(cur, 1, new Uint8Array(0)), ip(1)], // keepalive
      [sealed(next, 0, icmpEcho('198.19.3.5', '198.19.2.7', 8)), ip(3)], // data on a responder's next: confirms it
      [sealed(cur, 2, good), ip(3)], // from another node than the session's
      [sealed(old, 0, good), ip(1)], // a session past 180 s
      [sealed(cur, 2 ** 64 - 2 ** 13, good), ip(1)], // a counter at Reject-After-Messages
      [(() => {
        const d = sealed(cur, 3, good);
        d[20] = d[20]! ^ 1;
        return d;
      })(), ip(1)], // does not authenticate
      [sealed({ ...cur, localIndex: 4242 }, 0, good), ip(1)], // no such receiver index
      [sealed(cur, 4, icmpEcho('198.19.3.5', '198.19.2.7', 8)), ip(1)], // an inner source n1 may not use
      [handshake(1, true), ip(1)],
      [handshake(2, true), ip(3)],
      [handshake(1, false), ip(1)], // bad mac1
      [handshake(1, true), ip(7)], // a node without a key
      [Buffer.from([4, 0, 1, 0, ...randomBytes(40)]), ip(1)], // reserved bytes set
      [Buffer.from([1, 0, 0, 0, ...randomBytes(100)]), ip(1)], // an initiation of the wrong length
      [Buffer.alloc(0), ip(1)], // an empty datagram: one, malformed (not skipped as a train of none)
    ];
    const ts = tsAccept(cases.map(([d]) => d), cases.map(([, s]) => s));
    const native = nativeAccept(cases.map(([d]) => d), cases.map(([, s]) => s));
    expect(native).toEqual(ts);
    expect(native.verdicts.filter((_, i) => i % 2 === 0)).toEqual([3, 0, 2, 3, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    expect(native.counters[C.outside_drop_wg_expired]).toBe(2);
    for (const k of ['outside_drop_wg_replay', 'outside_drop_wg_auth', 'outside_drop_wg_unknown_index', 'outside_drop_spoofed_source', 'outside_drop_wg_mac1'] as const) {
      expect(native.counters[C[k]], k).toBe(1);
    }
    expect(native.counters[C.outside_drop_unknown_sender]).toBe(2);
    expect(native.counters[C.outside_drop_wg_malformed]).toBe(3);
  });
});
