// Interoperability with the Linux kernel's own VXLAN-GPE: node 1 is a kernel
// `vxlan gpe external` device with encap routes (test/lab/kernel_node.ts),
// nodes 2 and 3 run weftd. Pods ping both ways, 20 MB over TCP arrive intact
// both ways, and tcpdump on the underlay decodes both senders' datagrams as
// VXLAN-GPE with the cluster's VNI, the header bytes docs/architecture.md "Wire format" fixes, and the
// pod addresses inside. Inner TCP checksums are left partial only between
// native weft nodes (both list tcp-csum-partial), never toward the kernel.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftCluster } from '../lab/cluster.js';
import { startKernelNode, type KernelNode } from '../lab/kernel_node.js';
import { rootSkipReason } from '../harness/privilege.js';
import { pseudoHeaderSum } from '../harness/packets.js';
import { internetChecksum } from '../../src/wire/ipv4_packet.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** weftd engines to run against the kernel. */
const ENGINES: readonly string[] = ['native', 'js'];

const KERNEL_SUBNET = '198.19.200.0/24';
const TRANSFER_BYTES = 20 * 1024 * 1024;

/** Packets from `tcpdump -r file -nn -x`: each header line, then the bytes of its IP packet. */
function parseHexDump(text: string): { line: string; bytes: Buffer }[] {
  const packets: { line: string; hex: string[] }[] = [];
  for (const l of text.split('\n')) {
    const m = /^\s+0x[0-9a-f]+:\s+((?:[0-9a-f]{2,4}\s?)+)/.exec(l);
    if (m && packets.length) packets.at(-1)!.hex.push(m[1]!.replace(/\s+/g, ''));
    else if (/^\d\d:\d\d:\d\d/.test(l)) packets.push({ line: l, hex: [] });
  }
  return packets.map((p) => ({ line: p.line, bytes: Buffer.from(p.hex.join(''), 'hex') }));
}

/** The inner TCP data segments of captured VXLAN-GPE datagrams, and whether each one's checksum is full or partial. */
function innerTcpChecksums(packets: { bytes: Buffer }[]): ('full' | 'partial' | 'bad')[] {
  const out: ('full' | 'partial' | 'bad')[] = [];
  for (const { bytes } of packets) {
    const inner = bytes.subarray((bytes[0]! & 0x0f) * 4 + 16);
    const ihl = (inner[0]! & 0x0f) * 4;
    const len = inner.readUInt16BE(2);
    if (inner[9] !== 6 || len - ihl <= 32 + 12 || len > inner.length) continue; // data segments only, captured whole
    const pseudo = pseudoHeaderSum(inner, 6, len - ihl);
    if (internetChecksum(inner, ihl, len - ihl, pseudo) === 0) out.push('full');
    else if (inner.readUInt16BE(ihl + 16) === (~internetChecksum(inner, 0, 0, pseudo) & 0xffff)) out.push('partial');
    else out.push('bad');
  }
  return out;
}

for (const engine of ENGINES) {
  describe.skipIf(rootSkipReason())(`kernel VXLAN-GPE node and weftd --engine ${engine} nodes (needs root: network namespaces, TUN, weftd)`, () => {
    let c: WeftCluster;
    let k: KernelNode;
    let kPod: string;
    const weftPods: string[] = [];

    beforeAll(async () => {
      c = await WeftCluster.create({ nodes: 3, podsPerNode: 0, name: `interop-${engine}`, engine, startNodes: false });
      k = await startKernelNode(c, 1, { subnet: KERNEL_SUBNET, pods: 1 });
      await Promise.all([c.startNode(2, 1), c.startNode(3, 1)]);
      await k.refreshRoutes();
      kPod = k.pods[0]!;
      weftPods.push(c.nodes.get(2)!.pods[0]!, c.nodes.get(3)!.pods[0]!);
    }, 90_000);
    afterAll(async () => {
      await c?.destroy();
    });

    it('registers the kernel node in etcd and routes every weftd subnet through vxgpe0', async () => {
      const out = await c.lab.etcdctl(['get', k.leaseKey]);
      expect(JSON.parse(out.trim().split('\n')[1]!)).toEqual({ nodeName: 'kernel1', publicIp: '198.18.0.1', port: 4790, vni: 1, version: 'kernel', engine: 'kernel' });
      expect((await c.lab.etcdctl(['lease', 'timetolive', k.leaseId])).trim()).toMatch(/remaining\(\d+s\)/);
      expect(new Map(k.routes())).toEqual(new Map([[c.nodes.get(2)!.subnet!, '198.18.0.2'], [c.nodes.get(3)!.subnet!, '198.18.0.3']]));
      const routes = (await c.lab.exec(k.ns, ['ip', 'route', 'show', 'dev', 'vxgpe0'])).stdout;
      for (const n of [2, 3]) expect(routes).toMatch(new RegExp(`${c.nodes.get(n)!.subnet!.replace(/\./g, '\\.')}\\s+encap ip id 1 .*dst 198\\.18\\.0\\.${n}`));
      const table = await c.weftctl(['leases']);
      expect(table).toMatch(/198\.19\.200\.0\/24\s+kernel1\s+198\.18\.0\.1:4790/);
    });

    it('lets the kernel node\'s pod and each weftd node\'s pod ping each other', async () => {
      const kIp = c.lab.podIp(kPod);
      const results = await Promise.all(
        weftPods.flatMap((w) => [
          c.lab.ping(kPod, c.lab.podIp(w), { count: 2 }).then((ok) => ({ from: kPod, to: w, ok })),
          c.lab.ping(w, kIp, { count: 2 }).then((ok) => ({ from: w, to: kPod, ok })),
        ]),
      );
      expect(results.filter((r) => !r.ok)).toEqual([]);
    });

    for (const dir of ['kernel -> weftd', 'weftd -> kernel'] as const) {
      it(`moves 20 MB over TCP ${dir}, intact`, async () => {
        const [src, dst] = dir === 'kernel -> weftd' ? [kPod, weftPods[0]!] : [weftPods[0]!, kPod];
        const sink = c.lab.spawn(dst, [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'sink', '5001']);
        await sink.waitForLog(/listening/, 10_000);
        const sent = await c.lab.exec(src, [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'send', c.lab.podIp(dst), '5001', String(TRANSFER_BYTES)], { timeoutMs: 60_000 });
        const received = await sink.waitForLog(/^\d+ [0-9a-f]{64}$/, 30_000);
        expect(sent.stdout.trim()).toMatch(new RegExp(`^${TRANSFER_BYTES} [0-9a-f]{64}$`));
        expect(received.trim()).toBe(sent.stdout.trim());
      }, 90_000);
    }

    it('shows up in tcpdump on the underlay as VXLAN-GPE, vni 1, with the pods inside, from both senders', async () => {
      const pcap = join(c.lab.dir, 'underlay.pcap');
      // -Z root: Debian's tcpdump drops to user tcpdump before opening the
      // file, which cannot write into the lab's 0700 run directory.
      const dump = c.lab.spawn(k.ns, ['timeout', '15', 'tcpdump', '-Z', 'root', '-i', 'eth0', '-c', '6', '-U', '-w', pcap, 'udp', 'port', '4790']);
      await dump.waitForLog(/listening on eth0/, 10_000);
      const kIp = c.lab.podIp(kPod);
      const wIp = c.lab.podIp(weftPods[0]!);
      expect(await c.lab.ping(kPod, wIp, { count: 3 })).toBe(true);
      const exit = await dump.exited;
      expect(exit.code).toBe(0);

      const verbose = (await c.lab.exec(k.ns, ['tcpdump', '-r', pcap, '-nn', '-v'])).stdout;
      // tcpdump 4.99 prints, for each datagram:
      //   198.18.0.1.54579 > 198.18.0.2.4790: VXLAN-GPE, flags [IP], vni 1
      //   IP (tos 0x0, ttl 63, ...) 198.19.200.2 > 198.19.x.2: ICMP echo request, ...
      const esc = (s: string): string => s.replace(/\./g, '\\.');
      expect(verbose).toMatch(new RegExp(`198\\.18\\.0\\.1\\.\\d+ > 198\\.18\\.0\\.2\\.4790: VXLAN-GPE, flags \\[IP\\], vni 1\\n\\s+IP \\(.*\\n\\s+${esc(kIp)} > ${esc(wIp)}: ICMP echo request`));
      expect(verbose).toMatch(new RegExp(`198\\.18\\.0\\.2\\.\\d+ > 198\\.18\\.0\\.1\\.4790: VXLAN-GPE, flags \\[IP\\], vni 1\\n\\s+IP \\(.*\\n\\s+${esc(wIp)} > ${esc(kIp)}: ICMP echo reply`));

      // The bytes: both the kernel's and weftd's datagrams carry exactly
      // 0c 00 00 01 | 00 00 01 | 00, from an entropy source port.
      const packets = parseHexDump((await c.lab.exec(k.ns, ['tcpdump', '-r', pcap, '-nn', '-x'])).stdout);
      expect(packets.length).toBeGreaterThanOrEqual(6);
      const senders = new Set<string>();
      for (const { line, bytes } of packets) {
        const ihl = (bytes[0]! & 0x0f) * 4;
        expect(bytes[9], line).toBe(17);
        expect(bytes.readUInt16BE(ihl + 2), line).toBe(4790);
        const sport = bytes.readUInt16BE(ihl);
        expect(sport, line).toBeGreaterThanOrEqual(32768);
        expect(sport, line).toBeLessThanOrEqual(60999);
        expect(bytes.subarray(ihl + 8, ihl + 16).toString('hex'), line).toBe('0c00000100000100');
        senders.add(`${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`);
      }
      expect([...senders].sort()).toEqual(['198.18.0.1', '198.18.0.2']);
    }, 30_000);

    it(`leaves inner TCP checksums partial ${engine === 'native' ? 'toward the other native weft node only' : 'toward nobody'}, and the data arrives intact`, async () => {
      const features = JSON.parse((await c.lab.etcdctl(['get', '--print-value-only', `/weft/network/subnets/${c.nodes.get(2)!.subnet!.replace('/', '-')}`])).trim()) as { features?: string[] };
      expect(features.features ?? []).toEqual(engine === 'native' ? ['tcp-csum-partial'] : []);
      const seen: Record<string, ('full' | 'partial' | 'bad')[]> = {};
      for (const [to, dstIp] of [[weftPods[1]!, '198.18.0.3'], [kPod, '198.18.0.1']] as const) {
        const pcap = join(c.lab.dir, `csum-${dstIp}.pcap`);
        const dump = c.lab.spawn(c.lab.nodeNs(2), ['timeout', '15', 'tcpdump', '-Z', 'root', '-i', 'eth0', '-c', '40', '-U', '-w', pcap, 'udp', 'dst', 'port', '4790', 'and', 'dst', 'host', dstIp]);
        await dump.waitForLog(/listening on eth0/, 10_000);
        const sink = c.lab.spawn(to, [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'sink', '5002']);
        await sink.waitForLog(/listening/, 10_000);
        const sent = await c.lab.exec(weftPods[0]!, [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'send', c.lab.podIp(to), '5002', String(2 * 1024 * 1024)], { timeoutMs: 60_000 });
        expect((await sink.waitForLog(/^\d+ [0-9a-f]{64}$/, 30_000)).trim()).toBe(sent.stdout.trim());
        expect((await dump.exited).code).toBe(0);
        seen[dstIp] = innerTcpChecksums(parseHexDump((await c.lab.exec(c.lab.nodeNs(2), ['tcpdump', '-r', pcap, '-nn', '-x'])).stdout));
      }
      const only = (s: ('full' | 'partial' | 'bad')[]): string[] => [...new Set(s)];
      expect(seen['198.18.0.3']!.length).toBeGreaterThan(10);
      expect(only(seen['198.18.0.3']!)).toEqual([engine === 'native' ? 'partial' : 'full']);
      expect(seen['198.18.0.1']!.length).toBeGreaterThan(10);
      expect(only(seen['198.18.0.1']!)).toEqual(['full']);
    }, 90_000);
  });
}
