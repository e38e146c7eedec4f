// Writes the fuzz targets' seed corpora (native/fuzz/corpus/<target>/), from
// the test packet builders: valid inputs of every shape the worker handles,
// so the fuzzer starts deep in each path. Run with `npx tsx`; the output is
// committed.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, gpe, icmpEcho, tcpPacket, udpPacket, withVnetHdr } from '../../test/harness/packets.js';

const CORPUS = fileURLToPath(new URL('./corpus/', import.meta.url));
const payload = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));
const be16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);

/** Outside input: source selector, GRO segment size, buffer. */
function outside(src: number, seg: number, buf: Buffer): Buffer {
  return Buffer.concat([Buffer.from([src]), be16(seg), buf]);
}

/** WireGuard input: source selector, GRO segment size, mode, buffer (fuzz_wireguard.cc). */
function wireguard(src: number, seg: number, mode: number, buf: Buffer): Buffer {
  return Buffer.concat([Buffer.from([src]), be16(seg), Buffer.from([mode]), buf]);
}

/** A datagram the target seals (modes 1, 2): keypair, 16-bit counter, padding to the 16-byte header, the inner packet. */
function toSeal(keypair: number, counter: number, inner: Buffer): Buffer {
  const prefix = Buffer.alloc(16);
  prefix[0] = keypair;
  prefix.writeUInt16BE(counter, 1);
  return Buffer.concat([prefix, inner]);
}

const flow = { src: '198.19.1.5', dst: '198.19.2.7', sport: 40000, dport: 5201 };
const segs = [0, 1, 2, 3].map((i) => gpe(tcpPacket({ ...flow, seq: 1000 + i * 1400, payload: payload(1400) })));
const seeds: Record<string, Record<string, Buffer>> = {
  outside: {
    icmp: outside(0, 0, gpe(icmpEcho('198.19.1.5', '198.19.2.7', 56))),
    udp: outside(0, 0, gpe(udpPacket('198.19.1.5', '198.19.2.7', 1234, 53, 100))),
    gro_tcp_train: outside(0, segs[0]!.length, Buffer.concat(segs)),
    gro_short_last: outside(0, segs[0]!.length, Buffer.concat([...segs.slice(0, 2), gpe(tcpPacket({ ...flow, seq: 3800, payload: payload(300) }))])),
    stranger: outside(3, 0, gpe(icmpEcho('198.19.1.5', '198.19.2.7', 8))),
    spoofed: outside(1, 0, gpe(icmpEcho('198.19.1.5', '198.19.2.7', 8))),
    wrong_vni: outside(0, 0, gpe(icmpEcho('198.19.1.5', '198.19.2.7', 8), 9)),
  },
  inside: {
    icmp: withVnetHdr({}, icmpEcho('198.19.2.7', '198.19.1.5', 56)),
    unowned: withVnetHdr({}, icmpEcho('198.19.2.7', '198.19.9.9', 56)),
    udp_partial: withVnetHdr({ flags: VNET_F_NEEDS_CSUM, csumStart: 20, csumOffset: 6 }, udpPacket('198.19.2.7', '198.19.1.5', 1234, 53, 200)),
    tso: withVnetHdr(
      { flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 40, gsoSize: 1400, csumStart: 20, csumOffset: 16 },
      tcpPacket({ src: '198.19.2.7', dst: '198.19.1.5', sport: 5201, dport: 40000, payload: payload(5000), partialChecksum: true }),
    ),
  },
  wireguard: {
    // Source 1 is 198.18.0.3 (keypair 0, subnet .3), source 2 is .7 (keypair 1, subnet .7).
    sealed_icmp: wireguard(1, 0, 1, toSeal(0, 1, icmpEcho('198.19.3.5', '198.19.2.7', 56))),
    sealed_udp: wireguard(2, 0, 1, toSeal(1, 9, udpPacket('198.19.7.5', '198.19.2.7', 1234, 53, 100))),
    keepalive: wireguard(1, 0, 1, toSeal(0, 2, Buffer.alloc(0))),
    sealed_gro_train: wireguard(
      2,
      16 + 1440,
      1,
      Buffer.concat([0, 1, 2].map((i) => toSeal(1, 100 + i, tcpPacket({ src: '198.19.7.5', dst: '198.19.2.7', sport: 40000, dport: 5201, seq: 1000 + i * 1400, payload: payload(1400) })))),
    ),
    flipped: wireguard(1, 0, 2, toSeal(0, 3, icmpEcho('198.19.3.5', '198.19.2.7', 56))),
    wrong_source: wireguard(3, 0, 1, toSeal(0, 4, icmpEcho('198.19.3.5', '198.19.2.7', 56))),
    spoofed_inner: wireguard(1, 0, 1, toSeal(0, 5, icmpEcho('198.19.7.5', '198.19.2.7', 56))),
    initiation_mac1: wireguard(1, 0, 3, Buffer.alloc(148, 7)),
    response_mac1: wireguard(2, 0, 3, Buffer.alloc(92, 9)),
    initiation_raw: wireguard(1, 0, 0, Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.alloc(144, 3)])),
    cookie_reply: wireguard(1, 0, 0, Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.alloc(60, 5)])),
    unknown_index: wireguard(1, 0, 0, Buffer.concat([Buffer.from([4, 0, 0, 0, 9, 9, 9, 9]), Buffer.alloc(8), Buffer.alloc(32, 1)])),
    gpe_from_wg_peer: wireguard(2, 0, 0, gpe(icmpEcho('198.19.7.5', '198.19.2.7', 8))),
  },
};

for (const [target, files] of Object.entries(seeds)) {
  const dir = join(CORPUS, target);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
}
