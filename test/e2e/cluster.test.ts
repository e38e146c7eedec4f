// Three weftd nodes with two pods each on the lab: every pod reaches every
// other pod, a 20 MB TCP transfer arrives intact, and hostile datagrams are
// dropped and counted by reason while forwarding goes on.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftCluster } from '../lab/cluster.js';
import { rootSkipReason } from '../harness/privilege.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** Every node native (the default), every node js, and a mixed cluster (node 2 js, the others native). */
const SETUPS: [string, (node: number) => string][] = [
  ['native', () => 'native'],
  ['js', () => 'js'],
  ['mixed', (node) => (node === 2 ? 'js' : 'native')],
];

describe.skipIf(rootSkipReason()).each(SETUPS)('3 nodes x 2 pods, %s engines (needs root: network namespaces, TUN, weftd)', (name, engine) => {
  let c: WeftCluster;
  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 3, podsPerNode: 2, name: `cluster-${name}`, engine });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('gives each node a distinct /24 and writes flannel-format subnet files', () => {
    const subnets = [1, 2, 3].map((i) => c.nodes.get(i)!.subnet);
    expect(new Set(subnets).size).toBe(3);
    for (let i = 1; i <= 3; i++) {
      const env = c.subnetEnv(i);
      const [base] = c.nodes.get(i)!.subnet!.split('/');
      const firstUsable = base!.replace(/\.0$/, '.1');
      expect(env).toEqual({ FLANNEL_NETWORK: '198.19.0.0/16', FLANNEL_SUBNET: `${firstUsable}/24`, FLANNEL_MTU: '1464', FLANNEL_IPMASQ: 'false', WEFT_LEASE_EXPIRES: expect.any(String) });
      // The lease's earliest expiry: the default TTL (a day) from about now.
      const leftS = (Date.parse(env.WEFT_LEASE_EXPIRES!) - Date.now()) / 1000;
      expect(leftS).toBeGreaterThan(86_400 - 300);
      expect(leftS).toBeLessThanOrEqual(86_400);
    }
  });

  it('lets every pod ping every other pod, on the same node and across nodes', async () => {
    const pods = c.pods();
    expect(pods).toHaveLength(6);
    const pairs = pods.flatMap((a) => pods.filter((b) => b !== a).map((b) => [a, b] as const));
    const results = await Promise.all(pairs.map(async ([a, b]) => ({ from: a.ip, to: b.ip, ok: await c.lab.ping(a.ns, b.ip, { count: 1, timeoutS: 5 }) })));
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it('moves 20 MB over TCP between pods on different nodes, intact', async () => {
    const [src] = c.nodes.get(1)!.pods;
    const [dst] = c.nodes.get(3)!.pods;
    const r = await c.transfer(src!, dst!, 20 * 1024 * 1024);
    expect(r.sent).toMatch(/^20971520 [0-9a-f]{64}$/);
    expect(r.received).toBe(r.sent);
  }, 90_000);

  it('drops hostile datagrams by reason and keeps forwarding', async () => {
    const node2 = c.lab.nodeIp(2);
    const sub2 = c.nodes.get(2)!.subnet!.split('/')[0]!;
    const sub3 = c.nodes.get(3)!.subnet!.split('/')[0]!;
    const victim = sub2.replace(/\.0$/, '.2');
    const spoofedSrc = sub3.replace(/\.0$/, '.9');
    const spray = (ns: string, kind: string, n: number, ...inner: string[]): Promise<unknown> =>
      c.lab.exec(ns, [process.execPath, '--import', 'tsx', join(FIXTURES, 'udp_spray.ts'), node2, '4790', kind, String(n), ...inner], { timeoutMs: 30_000 });
    // The kernel may drop some of the spray itself, its receive buffer full while a busy weftd catches up: those count too.
    const kernelDrops = async (): Promise<number> => {
      const udp = (await c.lab.exec(c.lab.nodeNs(2), ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
      const [names, values] = udp.map((l) => l.split(/\s+/).slice(1));
      return Number(values![names!.indexOf('RcvbufErrors')]);
    };
    const kernelBefore = await kernelDrops();
    const before = await c.counters(2, 0);
    await spray(c.lab.nodeNs(1), 'random', 500);
    await spray(c.lab.nodeNs(1), 'short', 20);
    await spray(c.lab.nodeNs(1), 'vni', 20, spoofedSrc, victim);
    await spray(c.lab.nodeNs(1), 'flags', 20, spoofedSrc, victim);
    await spray(c.lab.nodeNs(1), 'spoofed', 20, spoofedSrc, victim);
    await spray(c.lab.etcdNs, 'spoofed', 20, spoofedSrc, victim);
    const after = await c.counters(2);
    const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
    expect(delta('outside_drop_short')).toBeGreaterThanOrEqual(20);
    expect(delta('outside_drop_vni')).toBeGreaterThanOrEqual(20);
    expect(delta('outside_drop_bad_flags')).toBeGreaterThanOrEqual(20);
    expect(delta('outside_drop_spoofed_source')).toBe(20);
    expect(delta('outside_drop_unknown_sender')).toBe(20);
    const drops = Object.keys(after).filter((k) => k.startsWith('outside_drop_')).reduce((s, k) => s + delta(k), 0);
    expect(drops + delta('outside_packets') + (await kernelDrops()) - kernelBefore).toBeGreaterThanOrEqual(600);
    expect(c.nodes.get(2)!.weftd!.log()).not.toMatch(/"level":(50|60)/);
    const [p1] = c.nodes.get(1)!.pods;
    expect(await c.lab.ping(p1!, victim, { count: 2 })).toBe(true);
  }, 60_000);

  it('counts packets the TUN cannot hand over when weft0\'s MTU is raised under weft, and keeps forwarding', async () => {
    const ns = c.lab.nodeNs(2);
    const [p1] = c.nodes.get(1)!.pods;
    const before = await c.counters(2, 0);
    await c.lab.exec(ns, ['ip', 'link', 'set', 'weft0', 'mtu', '2000']);
    try {
      // 1828-byte packets from node 2's own stack, DF set, into a TUN weft reads at the MTU it configured.
      await c.lab.exec(ns, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '-M', 'do', '-s', '1800', c.lab.podIp(p1!)], { allowFail: true });
    } finally {
      await c.lab.exec(ns, ['ip', 'link', 'set', 'weft0', 'mtu', '1464']);
    }
    const after = await c.counters(2);
    const delta = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0);
    if (engine(2) === 'js') {
      // The js engine reads at most the MTU: the kernel refuses each longer packet's read (EFAULT).
      expect(delta('inside_drop_read_error')).toBeGreaterThanOrEqual(3);
    } else {
      // The native engine reads up to 64 KiB: it gets the packet, and answers DF with fragmentation-needed.
      expect(delta('inside_drop_read_error')).toBe(0);
      expect(delta('inside_drop_too_big')).toBeGreaterThanOrEqual(1);
    }
    expect(await c.lab.ping(ns, c.lab.podIp(p1!), { count: 2 })).toBe(true);
  });

  it('shows the leases in etcdctl as JSON and in weftctl as a table', async () => {
    const out = await c.lab.etcdctl(['get', '--prefix', '/weft']);
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('/weft/network/config');
    expect(JSON.parse(lines[1]!)).toEqual({ network: '198.19.0.0/16', subnetLen: 24, vni: 1, port: 4790 });
    const leases = lines.slice(2).filter((_, k) => k % 2 === 1).map((l) => JSON.parse(l) as { nodeName: string; publicIp: string });
    expect(leases.map((l) => `${l.nodeName}@${l.publicIp}`).sort()).toEqual(['node1@198.18.0.1', 'node2@198.18.0.2', 'node3@198.18.0.3']);
    const table = await c.weftctl(['leases']);
    expect(table.split('\n')[0]).toMatch(/^SUBNET\s+NODE\s+PUBLIC IP\s+EXPIRES IN\s+NOTE$/);
    for (let i = 1; i <= 3; i++) expect(table).toMatch(new RegExp(`${c.nodes.get(i)!.subnet!.replace(/\./g, '\\.')}\\s+node${i}\\s+198\\.18\\.0\\.${i}:4790\\s+23h`));
  });
});
