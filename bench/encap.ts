// In-process microbenchmark of the per-packet work of a weft node, without
// syscalls: for each inner packet, the sender's decision (classifyInside:
// IPv4 checks + route lookup), the 8-byte VXLAN-GPE header and the copy of
// the packet behind it, then the receiver's checks on the result
// (acceptOutside: header, VNI, known sender, inner IPv4, anti-spoofing,
// local destination, TTL). A route table of 100 peers; packets built once;
// every packet is accepted (checked before timing).
//
//   npx tsx bench/encap.ts            (WEFT_BENCH_ENCAP_MS = ms per size and engine, default 1000)
//
// Prints a markdown table and writes bench/results/encap-<date>.json.
//
// Engines plug in through EncapBench. The native row calls the test addon's
// benchEncap(routes, self, packets, outerSrc, iterations), which runs the
// same steps in C++ (classify_inside, gpe_write + memcpy, accept_outside)
// and returns ns per packet; it is skipped, with a note, while the test
// addon (native/build/Release/weft_test.node) is not built.

import { cpus, release } from 'node:os';
import { GPE_NEXT_PROTO_IPV4, VXLAN_GPE_HEADER_LEN } from '../src/constants.js';
import { C, COUNTER_NAMES } from '../src/dataplane/counters.js';
import { classifyInside } from '../src/dataplane/inside.js';
import { acceptOutside } from '../src/dataplane/outside.js';
import { formatIp, parseCidr, parseIp, type Cidr } from '../src/net/ipv4.js';
import { RouteTable, type Peer } from '../src/routes/route_table.js';
import { writeGpeHeader } from '../src/wire/vxlan_gpe.js';
import { udpPacket } from '../test/harness/packets.js';
import { loadTestAddon } from '../test/harness/test_addon.js';
import { median } from '../test/harness/stats.js';
import { writeResult } from './results.js';

export const SIZES = [64, 512, 1400] as const;
const PEERS = 100;
const BATCH = 256;
const VNI = 1;
const NETWORK = '198.19.0.0/16';
const SUBNET_LEN = 24;
const TRIALS = 5;

/**
 * Inner packets of one size, all for one receiving node (`self`), from pods
 * of the other 99 nodes, laid out like a TUN read batch (packet i at
 * i * stride in `slab`) and also as one Buffer view per packet.
 */
export interface PacketBatch {
  readonly size: number;
  readonly count: number;
  readonly slab: Buffer;
  readonly stride: number;
  readonly lengths: Uint32Array;
  readonly packets: Buffer[];
  /** Underlay address of the node owning each packet's source: the outer source the receiver sees. */
  readonly outerSrc: Uint32Array;
  /** The receiving node's subnet, holding every packet's destination. */
  readonly self: Cidr;
  readonly table: RouteTable;
  readonly vni: number;
}

export interface EncapBench {
  readonly name: string;
  /** The per-packet work over `packets` for about `ms` milliseconds after a warm-up: median ns per packet. */
  run(size: number, packets: PacketBatch, ms: number): { nsPerPacket: number };
}

/** `n` peers: subnet 198.19.<k+1>.0/24 at underlay 198.18.1.<k+1>. */
export function buildPeers(n = PEERS): Peer[] {
  return Array.from({ length: n }, (_, k) => ({
    subnet: parseCidr(`198.19.${k + 1}.0/24`),
    node: `node${k + 1}`,
    ip: parseIp(`198.18.1.${k + 1}`),
    port: 4790,
  }));
}

/** UDP packets of `size` bytes in all (IPv4 header included) to pods of peer 0, from pods of peers 1..n-1. */
export function buildBatch(size: number, peers: readonly Peer[], count = BATCH): PacketBatch {
  if (size < 28) throw new Error(`inner packet size ${size} < 28 (IPv4 + UDP headers)`);
  const table = RouteTable.build(parseCidr(NETWORK), SUBNET_LEN, peers);
  const self = peers[0]!.subnet;
  const stride = Math.max(size, 1500);
  const slab = Buffer.alloc(stride * count);
  const lengths = new Uint32Array(count);
  const outerSrc = new Uint32Array(count);
  const packets: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const from = peers[1 + (i % (peers.length - 1))]!;
    const src = formatIp(from.subnet.base + 2 + (i % 200));
    const dst = formatIp(self.base + 2 + ((i * 7) % 200));
    const pkt = udpPacket(src, dst, 10_000 + i, 5201, size - 28);
    pkt.copy(slab, i * stride);
    lengths[i] = pkt.length;
    outerSrc[i] = from.ip;
    packets.push(slab.subarray(i * stride, i * stride + pkt.length));
  }
  return { size, count, slab, stride, lengths, packets, outerSrc, self, table, vni: VNI };
}

/** Median over TRIALS of ns per packet, each trial about ms / TRIALS, after a warm-up of about ms / 4. */
function timePasses(count: number, ms: number, pass: () => void): number {
  const warmUntil = performance.now() + Math.max(50, ms / 4);
  while (performance.now() < warmUntil) pass();
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < 10; k++) pass();
  const perPass = Number(process.hrtime.bigint() - t0) / 10;
  const passes = Math.max(1, Math.round(((ms / TRIALS) * 1e6) / perPass));
  const samples: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const s = process.hrtime.bigint();
    for (let k = 0; k < passes; k++) pass();
    samples.push(Number(process.hrtime.bigint() - s) / (passes * count));
  }
  return median(samples);
}

/** The js engine's per-packet work, as JsEngine.inside and JsEngine.outside do it (slab + offsets, one send buffer). */
export const jsBench: EncapBench = {
  name: 'js',
  run(_size, b, ms) {
    const c = new Float64Array(COUNTER_NAMES.length);
    const out = Buffer.alloc(b.stride + VXLAN_GPE_HEADER_LEN);
    let accepted = 0;
    const pass = (): void => {
      const { slab, stride, lengths, table, outerSrc, self, vni } = b;
      for (let i = 0; i < b.count; i++) {
        const off = i * stride;
        const len = lengths[i]!;
        const peer = classifyInside(slab, off, len, table, c);
        if (peer < 0) continue;
        writeGpeHeader(out, 0, vni, GPE_NEXT_PROTO_IPV4);
        slab.copy(out, VXLAN_GPE_HEADER_LEN, off, off + len);
        if (acceptOutside(out, 0, len + VXLAN_GPE_HEADER_LEN, outerSrc[i]!, table, self, vni, c)) accepted++;
      }
    };
    pass();
    if (accepted !== b.count) {
      const drops = COUNTER_NAMES.filter((n) => c[C[n]]! > 0).map((n) => `${n}=${c[C[n]]}`);
      throw new Error(`js bench: ${accepted} of ${b.count} packets accepted (${drops.join(', ')})`);
    }
    return { nsPerPacket: timePasses(b.count, ms, pass) };
  },
};

/** The native row, through the test addon's benchEncap; undefined (with the reason) when it cannot run. */
function nativeBench(): { bench?: EncapBench; reason?: string } {
  let addon;
  try {
    addon = loadTestAddon();
  } catch (err) {
    return { reason: (err as Error).message };
  }
  const benchEncap = addon.benchEncap.bind(addon);
  return {
    bench: {
      name: 'native',
      run(_size, b, ms) {
        const self = { base: b.self.base, len: b.self.len, vni: b.vni };
        const routes = b.table.arrays();
        const call = (iterations: number): number => {
          const ns = benchEncap(routes, self, b.packets, b.outerSrc, iterations);
          if (!(ns > 0)) throw new Error(`native benchEncap accepted no packet (returned ${ns})`);
          return ns;
        };
        const warmUntil = performance.now() + Math.max(50, ms / 4);
        while (performance.now() < warmUntil) call(100);
        const perPassNs = call(100) * b.count;
        const iterations = Math.max(1, Math.round(((ms / TRIALS) * 1e6) / perPassNs));
        return { nsPerPacket: median(Array.from({ length: TRIALS }, () => call(iterations))) };
      },
    },
  };
}

async function main(): Promise<void> {
  const ms = Number(process.env.WEFT_BENCH_ENCAP_MS ?? 1000);
  if (!(ms > 0)) throw new Error(`WEFT_BENCH_ENCAP_MS must be a positive number of milliseconds, got ${process.env.WEFT_BENCH_ENCAP_MS}`);
  const benches: EncapBench[] = [jsBench];
  const notes: string[] = [];
  const native = nativeBench();
  if (native.bench) benches.unshift(native.bench);
  else notes.push(`native row skipped: ${native.reason}`);

  const peers = buildPeers();
  const batches = SIZES.map((s) => buildBatch(s, peers));
  const rows: { engine: string; size: number; nsPerPacket: number; mpps: number; gbps: number }[] = [];
  for (const bench of benches) {
    for (const b of batches) {
      const { nsPerPacket } = bench.run(b.size, b, ms);
      rows.push({ engine: bench.name, size: b.size, nsPerPacket, mpps: 1e3 / nsPerPacket, gbps: (b.size * 8) / nsPerPacket });
    }
  }

  const say = (s = ''): void => void process.stdout.write(`${s}\n`);
  say(`encap microbenchmark: classifyInside + VXLAN-GPE header + copy + acceptOutside, ${PEERS} peers, batch ${BATCH}, median of ${TRIALS} trials of ~${Math.round(ms / TRIALS)} ms, one core`);
  say();
  say('| engine | inner packet (bytes) | ns/packet | Mpps | Gbit/s (inner) | speed-up vs js |');
  say('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const js = rows.find((x) => x.engine === 'js' && x.size === r.size);
    say(`| ${r.engine} | ${r.size} | ${r.nsPerPacket.toFixed(1)} | ${r.mpps.toFixed(2)} | ${r.gbps.toFixed(2)} | ${js ? `${(js.nsPerPacket / r.nsPerPacket).toFixed(1)}x` : '-'} |`);
  }
  for (const n of notes) say(`\nnote: ${n}`);

  const date = new Date().toISOString();
  const file = writeResult('encap', date, { date, node: process.version, kernel: release(), cpu: cpus()[0]?.model ?? 'unknown', nproc: cpus().length, peers: PEERS, batch: BATCH, trials: TRIALS, msPerSize: ms, rows, notes });
  say(`\nwrote ${file}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/encap: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
