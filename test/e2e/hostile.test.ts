// What an attacker or a careless operator does to a running cluster, and
// what weft does about it: a second weftd on a node, leases naming public
// IPs no node can have or that would loop.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { POD_NETWORK, PREFIX, WEFTD, WeftCluster } from '../lab/cluster.js';

const FIXTURE = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const FILL_LEASES = FIXTURE('fill_leases.mjs');

const skip = rootSkipReason();

describe.skipIf(skip)(`hostile input on a running cluster${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let c: WeftCluster;
  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'hostile' });
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('a second weftd on a node refuses to start, naming the first, and the first keeps forwarding', async () => {
    const first = c.nodes.get(1)!.weftd!;
    const second = c.lab.spawn(c.lab.nodeNs(1), [
      process.execPath, WEFTD,
      '--etcd-endpoints', c.lab.etcdEndpoint,
      '--etcd-prefix', PREFIX,
      '--node-name', 'intruder',
      '--iface', 'eth0',
      '--metrics-addr', 'off',
      '--subnet-file', join(c.nodeDir(1), 'subnet-2.env'),
      '--state-dir', join(c.nodeDir(1), 'state'),
    ]);
    const exit = await second.exitWithin(15_000);
    expect(exit.code).toBe(1);
    expect(second.log()).toContain(`another weftd already runs on this node (pid ${first.pid}, node node1`);
    expect(await c.lab.ping(c.pods()[0]!.ns, c.pods()[1]!.ip)).toBe(true);
    const leases = JSON.parse(await c.weftctl(['leases', '--json'])) as { leases: { node: string }[] };
    expect(leases.leases.map((l) => l.node).sort()).toEqual(['node1', 'node2']);
  });

  it('answers a flood toward an unowned subnet (subnet 0, never leased) with a bounded number of ICMP errors, counting the rest', async () => {
    const pod = c.pods().find((p) => p.node === 1)!;
    const before = await c.counters(1);
    const t0 = Date.now();
    const sent = await c.lab.exec(pod.ns, [process.execPath, '--import', 'tsx', FIXTURE('udp_spray.ts'), '198.19.0.9', '9999', 'random', '2s'], { timeoutMs: 30_000 });
    const after = await c.counters(1);
    const seconds = (Date.now() - t0) / 1000;
    const errors = after.inside_icmp_unreachable! - before.inside_icmp_unreachable!;
    const limited = after.inside_icmp_rate_limited! - before.inside_icmp_rate_limited!;
    process.stdout.write(`[hostile] ${sent.stdout.trim()} datagrams toward 198.19.0.9 in ~2 s: ${errors} ICMP errors sent, ${limited} rate limited\n`);
    expect(Number(sent.stdout)).toBeGreaterThan(1000);
    // 50 at once, then 100 per second per worker (two workers at most here).
    expect(errors).toBeLessThanOrEqual(2 * (50 + 100 * seconds));
    expect(limited).toBeGreaterThan(0);
    expect(errors + limited).toBeGreaterThan(1000);
  });

  it('sends through the underlay device only: a peer address routed into weft0 does not bring its packets back in', async () => {
    const n1 = c.lab.nodeNs(1);
    const status = async () => JSON.parse((await c.http(1, '/status')).body) as { engine: { details: { boundToDevice?: boolean } }; peers: { subnet: string }[] };
    expect((await status()).engine.details.boundToDevice).toBe(true);
    const held = new Set([...c.nodes.values()].map((n) => n.subnet));
    const free = Array.from({ length: 250 }, (_, k) => k + 2).find((t) => !held.has(`198.19.${t}.0/24`))!;
    const key = `${PREFIX}/network/subnets/198.19.${free}.0-24`;
    // An operator's stray route sends 198.18.0.77 into the TUN; a lease names it as a node.
    await c.lab.exec(n1, ['ip', 'route', 'add', '198.18.0.77/32', 'dev', 'weft0']);
    await c.lab.etcdctl(['put', key, JSON.stringify({ nodeName: 'stray', publicIp: '198.18.0.77', port: 4790, vni: 1, version: 'hand' })]);
    try {
      await until('the stray lease routed', async () => (await status()).peers.some((p) => p.subnet === `198.19.${free}.0/24`), 10_000, 100);
      const before = await c.counters(1);
      const pod = c.pods().find((p) => p.node === 1)!;
      await c.lab.ping(pod.ns, `198.19.${free}.1`, { count: 10, timeoutS: 3 });
      const after = await c.counters(1);
      expect(after.inside_packets! - before.inside_packets!).toBeGreaterThanOrEqual(10);
      // Were the sockets not bound to eth0, each encapsulated echo would re-enter weft0, and be dropped there as unroutable.
      expect(after.inside_drop_no_route! - before.inside_drop_no_route!).toBe(0);
    } finally {
      await c.lab.etcdctl(['del', key]);
      await c.lab.exec(n1, ['ip', 'route', 'del', '198.18.0.77/32'], { allowFail: true });
    }
  });

  it('leases naming a public IP no node can have, inside the cluster network, or this node\'s own are refused, counted and never routed', async () => {
    const key = (third: number): string => `${PREFIX}/network/subnets/198.19.${third}.0-24`;
    const put = (third: number, nodeName: string, publicIp: string) =>
      c.lab.etcdctl(['put', key(third), JSON.stringify({ nodeName, publicIp, port: 4790, vni: 1, version: 'hand' })]);
    const status = async (i: number) => JSON.parse((await c.http(i, '/status')).body) as { ignoredLeases: number; peers: { subnet: string }[] };
    const waitIgnored = async (i: number, n: number): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while ((await status(i)).ignoredLeases !== n) {
        if (Date.now() > deadline) throw new Error(`node ${i}: ignoredLeases is ${(await status(i)).ignoredLeases}, not ${n}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    // Subnets no node holds (allocation is random), so the hand-written leases never overwrite a real one.
    const held = new Set([...c.nodes.values()].map((n) => n.subnet));
    const [A, B, C, D] = Array.from({ length: 250 }, (_, k) => k + 2).filter((t) => !held.has(`198.19.${t}.0/24`)) as [number, number, number, number];
    await put(A, 'looper', `198.19.${A}.5`);
    await put(B, 'loopback', '127.0.0.1');
    await put(C, 'impostor', c.lab.nodeIp(1));
    try {
      await waitIgnored(1, 3);
      const peers = (await status(1)).peers.map((p) => p.subnet);
      expect(peers).not.toContain(`198.19.${A}.0/24`);
      expect(peers).not.toContain(`198.19.${B}.0/24`);
      expect(peers).not.toContain(`198.19.${C}.0/24`);
      // Only node 1 is named by the impostor: to node 2 that lease is another node's address.
      await waitIgnored(2, 2);
      const log = c.nodes.get(1)!.weftd!.log();
      expect(log).toContain('inside the cluster network 198.19.0.0/16: packets to it would loop through the TUN');
      expect(log).toContain('publicIp 127.0.0.1 is a loopback address');
      expect(log).toContain(`names this node's own address ${c.lab.nodeIp(1)}`);

      // Twenty pings toward the looping lease's subnet: no packet storm.
      const before = await c.counters(1);
      const pod = c.pods().find((p) => p.node === 1)!;
      expect(await c.lab.ping(pod.ns, `198.19.${A}.1`, { count: 20, timeoutS: 3 })).toBe(false);
      const after = await c.counters(1);
      expect(after.inside_packets! - before.inside_packets!).toBeLessThan(100);
      expect(after.inside_icmp_unreachable! - before.inside_icmp_unreachable!).toBeGreaterThan(0);
    } finally {
      await c.lab.etcdctl(['del', key(A)]);
      await c.lab.etcdctl(['del', key(B)]);
      await c.lab.etcdctl(['del', key(C)]);
    }
    await waitIgnored(1, 0);

    // A good lease overwritten with a bad value loses its route at once, not at the next re-list.
    await put(D, 'fine', '198.18.0.99');
    const routed = async (): Promise<boolean> => (await status(1)).peers.some((p) => p.subnet === `198.19.${D}.0/24`);
    for (let t = Date.now(); !(await routed()); ) if (Date.now() - t > 5000) throw new Error('the good lease was never routed');
    await put(D, 'fine', '0.0.0.0');
    await waitIgnored(1, 1);
    expect(await routed()).toBe(false);
    await c.lab.etcdctl(['del', key(D)]);
    await waitIgnored(1, 0);
  });
});

describe.skipIf(skip)(`16,000 leases with 253-byte node names${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let c: WeftCluster;
  afterAll(async () => {
    await c?.destroy();
  });

  it('a listing of several MB (over gRPC\'s 4 MiB) still lets nodes join and forward', async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 0, startNodes: false, name: 'many-leases' });
    // /30 subnets: 16,384 of them in the lab's /16, so 16,000 taken still leaves room.
    await c.weftctl(['init', '--network', POD_NETWORK, '--subnet-len', '30', '--force']);
    const fill = await c.lab.exec(c.lab.nodeNs(1), [process.execPath, FILL_LEASES, c.lab.etcdEndpoint, PREFIX, '198.19.0.0', '30', '16000', '253'], { timeoutMs: 70_000 });
    expect(Number(fill.stdout)).toBeGreaterThan(4 * 1024 * 1024);
    const t0 = Date.now();
    await Promise.all([c.startNode(1, 1), c.startNode(2, 1)]);
    process.stdout.write(`[many-leases] 16,000 leases (${(Number(fill.stdout) / 1e6).toFixed(1)} MB of values): both nodes ready ${Date.now() - t0} ms after start\n`);
    type Status = { peers: { node: string }[]; ignoredLeases: number };
    const status = async (i: number): Promise<Status> => JSON.parse((await c.http(i, '/status')).body) as Status;
    // Started together, each node may learn the other's lease from its watch after its listing: bounded, and a miss names the node.
    for (const [i, other] of [[1, 'node2'], [2, 'node1']] as const) {
      await until(`node${i}'s table to hold ${other}`, async () => (await status(i)).peers.some((p) => p.node === other), 30_000, 500);
    }
    const [a, b] = c.pods();
    const pinged = await c.lab.ping(a!.ns, b!.ip, { count: 2, timeoutS: 10 });
    const why = pinged ? '' : `; counters of node1 ${JSON.stringify(await c.counters(1))}, of node2 ${JSON.stringify(await c.counters(2))}`;
    expect(pinged, `ping from ${a!.ns} to ${b!.ip}${why}`).toBe(true);
    const s1 = await status(1);
    expect(s1.peers.length).toBe(16_001);
    expect(s1.ignoredLeases).toBe(0);
  }, 150_000);
});
