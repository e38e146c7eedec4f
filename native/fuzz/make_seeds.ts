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
};

for (const [target, files] of Object.entries(seeds)) {
  const dir = join(CORPUS, target);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
}
