// --engine kernel: weftd driving Linux's own VXLAN-GPE device, in one cluster
// with the userspace engines. Node 1 runs the kernel engine with its filter
// in nftables, node 4 the kernel engine with iptables (no nft on its PATH),
// node 2 native, node 3 js. Pods ping every pair and move 20 MiB intact in
// every direction between the engines; each node restarts (the kernel node
// after SIGKILL, adopting its routes and dropping a stale one); a peer joins
// and leaves and the routes follow; hostile datagrams at the kernel nodes are
// dropped and counted, never forwarded; the device deleted or set down is
// repaired; a subnet taken by another node moves the device to the next;
// SIGTERM leaves nothing behind; and the refusals exit 2.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { PREFIX, WEFTCTL, WEFTD, WeftCluster, weftdEvents } from '../lab/cluster.js';
import { createLeaseIfFree, keyOfSubnet } from '../lab/kernel_node.js';
import { pathWithout } from '../lab/path_without.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const ENGINE: Record<number, string> = { 1: 'kernel', 2: 'native', 3: 'js', 4: 'kernel', 5: 'native' };
const TRANSFER_BYTES = 20 * 1024 * 1024;
const SPRAY = 20;

type Status = {
  engine: { kind: string; details: Record<string, unknown> };
  counters: Record<string, number>;
  peers: { subnet: string }[];
  readiness: { status: string };
};

const skip = rootSkipReason();

describe.skipIf(skip)(`--engine kernel in a cluster with native and js nodes${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let c: WeftCluster;
  /** Node 4's PATH: every command but nft. */
  let noNft: Record<string, string>;

  const ns = (i: number): string => c.lab.nodeNs(i);
  const sh = async (i: number, ...argv: string[]): Promise<string> => (await c.lab.exec(ns(i), argv)).stdout;
  const status = async (i: number): Promise<Status> => JSON.parse((await c.http(i, '/status')).body) as Status;
  const pod = (i: number): string => c.nodes.get(i)!.pods[0]!;
  const subnet = (i: number): string => c.nodes.get(i)!.subnet!;
  /** weft's routes on node i: `<subnet> -> <remote>`, and `throw <network>`. */
  const weftRoutes = async (i: number): Promise<string[]> =>
    (await sh(i, 'ip', '-d', 'route', 'show', 'proto', '87'))
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (l.startsWith('throw') ? l.split(/\s+/).slice(0, 2).join(' ') : `${l.split(/\s+/)[1]} -> ${/ dst (\S+)/.exec(l)?.[1]}${l.includes(' csum ') ? ' csum' : ''}`))
      .sort();
  const expectedRoutes = (i: number, peers: number[]): string[] =>
    [...peers.filter((p) => p !== i).map((p) => `${subnet(p)} -> ${c.lab.nodeIp(p)} csum`), 'throw 198.19.0.0/16'].sort();
  const start = (i: number, extra: string[] = []): Promise<unknown> => c.startNode(i, 1, extra, i === 4 ? noNft : undefined);
  /** The subnets of the cluster network no node holds. */
  const freeSubnets = (): string[] => {
    const held = new Set([...c.nodes.values()].map((n) => n.subnet));
    return Array.from({ length: 250 }, (_, k) => `198.19.${k + 2}.0/24`).filter((s) => !held.has(s));
  };

  /** After SIGTERM: no device, no route of weft's, no filter of weft's. */
  async function expectNothingLeft(i: number): Promise<void> {
    expect((await c.lab.exec(ns(i), ['ip', 'link', 'show', 'weft0'], { allowFail: true })).code).not.toBe(0);
    expect(await weftRoutes(i)).toEqual([]);
    expect(await sh(i, 'nft', 'list', 'tables')).not.toMatch(/weft_kernel/);
    expect(await sh(i, 'iptables-save')).not.toMatch(/WEFT-KERNEL/);
  }

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 4, podsPerNode: 0, name: 'kernel-engine', engine: (i) => ENGINE[i]!, startNodes: false });
    noNft = { PATH: await pathWithout(join(c.lab.dir, 'bin-no-nft'), ['nft']) };
    // A kernel sender over a veth hands inner checksums over unfinished; a real NIC finishes them (README, DESIGN).
    for (const i of [1, 4]) await c.lab.exec(ns(i), ['ethtool', '-K', 'eth0', 'tx', 'off']);
    await Promise.all([1, 2, 3, 4].map((i) => start(i)));
    // Started together, each learns the others by its watch.
    for (const i of [1, 4]) await until(`node${i}'s routes to the 3 others`, async () => (await status(i)).engine.details.routes === 3, 15_000, 100);
  }, 120_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('creates a vxlan gpe external device with an encap route per peer and a throw route, and leases without the native engine\'s features', async () => {
    for (const i of [1, 4]) {
      const link = await sh(i, 'ip', '-d', 'link', 'show', 'weft0');
      expect(link).toMatch(/mtu 1464 .*state UNKNOWN/);
      expect(link).toMatch(/vxlan external vnifilter.*dstport 4790 nolearning .*udpcsum .*gpe/);
      expect(await sh(i, 'bridge', 'vni', 'show', 'dev', 'weft0')).toMatch(/weft0\s+1\b/);
      expect(await sh(i, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'weft0')).toMatch(new RegExp(`inet ${subnet(i).replace('/24', '/32')} `));
      expect(await weftRoutes(i)).toEqual(expectedRoutes(i, [1, 2, 3, 4]));
      const s = await status(i);
      expect(s.engine).toMatchObject({ kind: 'kernel', details: { device: 'weft0', vnifilter: true, firewall: i === 1 ? 'nftables' : 'iptables', routes: 3, unroutablePeers: 0 } });
      expect(s.readiness.status).toBe('ready');
      expect(c.subnetEnv(i).FLANNEL_MTU).toBe('1464');
    }
    // What expectNothingLeft looks for after SIGTERM is there while they run: node 1's table, node 4's chains.
    expect(await sh(1, 'nft', 'list', 'tables')).toMatch(/^table ip weft_kernel$/m);
    expect(await sh(4, 'iptables-save')).toMatch(/^:WEFT-KERNEL-IN /m);
    const lease = async (i: number): Promise<{ engine: string; features?: string[] }> => JSON.parse((await c.lab.etcdctl(['get', '--print-value-only', keyOfSubnet(subnet(i))])).trim()) as { engine: string; features?: string[] };
    expect(await lease(1)).toMatchObject({ engine: 'kernel' });
    expect((await lease(1)).features ?? []).toEqual([]);
    expect((await lease(2)).features).toEqual(['tcp-csum-partial']);
    const metrics = (await c.http(1, '/metrics')).body;
    expect(metrics).toContain('weft_build_info{version="0.1.0",engine="kernel"} 1');
    expect(metrics).toMatch(/^weft_kernel_routes 3$/m);
    expect(metrics).toMatch(/^weft_kernel_device_errors_total\{direction="outside"\} 0$/m);
    expect(await sh(1, process.execPath, WEFTCTL, 'status')).toMatch(/engine\s+kernel \(device weft0, vnifilter true, firewall nftables, routes 3,/);
    const check = JSON.parse((await c.lab.exec(ns(1), [process.execPath, WEFTCTL, 'check', '--json'], { allowFail: true, timeoutMs: 20_000 })).stdout) as { checks: { name: string; verdict: string; summary: string }[] };
    const verdicts = Object.fromEntries(check.checks.map((k) => [k.name, k.verdict]));
    expect(verdicts).toMatchObject({ vxlan: 'ok', mtu: 'ok', 'subnet-file': 'ok', peers: 'ok' });
    expect(verdicts.tun).toBeUndefined();
    expect(check.checks.find((k) => k.name === 'vxlan')!.summary).toBe(`weft0 up, MTU 1464, ${subnet(1).replace('/24', '/32')}`);
  });

  it('lets every pod ping every other, and answers a destination no node owns with net-unreachable, counted', async () => {
    expect(await c.pingPairs([1, 2, 3, 4])).toEqual([]);
    const unowned = freeSubnets()[0]!.replace('.0/24', '.1');
    for (const i of [1, 4]) {
      const before = (await status(i)).counters.inside_icmp_unreachable!;
      const r = await c.lab.exec(pod(i), ['ping', '-n', '-c', '1', '-W', '1', unowned], { allowFail: true });
      expect(r.stdout).toMatch(/Destination Net Unreachable/);
      // iptables' counters are read again on weftd's next check, within a second.
      await until(`node${i} counting the net-unreachable`, async () => (await status(i)).counters.inside_icmp_unreachable! > before, 5000, 100);
    }
    const s = await status(1);
    expect(s.counters.inside_packets).toBeGreaterThan(0);
    expect(s.counters.outside_packets).toBeGreaterThan(0);
  });

  it('moves 20 MiB over TCP intact in every direction between the kernel, native and js nodes, and between the two kernel nodes', async () => {
    let port = 5100;
    for (const [a, b] of [[1, 2], [2, 1], [1, 3], [3, 1], [2, 3], [3, 2], [1, 4], [4, 1]] as const) {
      const r = await c.transfer(pod(a), pod(b), TRANSFER_BYTES, { port: port++ });
      expect(r.sent, `node${a} -> node${b}`).toMatch(new RegExp(`^${TRANSFER_BYTES} [0-9a-f]{64}$`));
      expect(r.received, `node${a} -> node${b}`).toBe(r.sent);
    }
  }, 150_000);

  it('drops hostile datagrams at the kernel nodes, counted by reason, and forwards none of them', async () => {
    const icmpIn = async (i: number): Promise<number> => {
      const [names, values] = (await sh(i, 'cat', '/proc/net/snmp')).split('\n').filter((l) => l.startsWith('Icmp:')).map((l) => l.split(/\s+/));
      return Number(values![names!.indexOf('InMsgs')]);
    };
    for (const k of [1, 4]) {
      const to = c.lab.nodeIp(k);
      const victim = c.lab.podIp(pod(k));
      const spray = (fromNs: string, kind: string, ...inner: string[]): Promise<unknown> =>
        c.lab.exec(fromNs, [process.execPath, '--import', 'tsx', join(FIXTURES, 'udp_spray.ts'), to, '4790', kind, String(SPRAY), ...inner], { timeoutMs: 30_000 });
      const other = c.lab.podIp(pod(3));
      const before = (await status(k)).counters;
      const icmp3 = await icmpIn(3);
      const seenBy3 = (await status(3)).counters.outside_packets!;
      // From no node (etcd's namespace), well formed, to a pod of the node.
      await spray(c.lab.etcdNs, 'spoofed', c.lab.podIp(pod(2)), victim);
      // From node 2: another VNI, bad flags, short, another next protocol.
      await spray(ns(2), 'vni', c.lab.podIp(pod(2)), victim);
      await spray(ns(2), 'flags', c.lab.podIp(pod(2)), victim);
      await spray(ns(2), 'short');
      await spray(ns(2), 'proto', c.lab.podIp(pod(2)), victim);
      // From node 2, relayed through the kernel node if it could: to node 3's pod, to node 3's underlay address.
      await spray(ns(2), 'spoofed', c.lab.podIp(pod(2)), other);
      await spray(ns(2), 'spoofed', c.lab.podIp(pod(2)), c.lab.nodeIp(3));
      // An inner source no node may send from.
      await spray(ns(2), 'spoofed', '198.18.5.9', victim);
      const expected = { unknown: SPRAY, vni: SPRAY, flags: SPRAY, short: SPRAY, proto: SPRAY, notLocal: 2 * SPRAY, spoofed: SPRAY };
      let after = before;
      const drops = async (): Promise<typeof expected> => {
        after = (await status(k)).counters;
        const delta = (n: string): number => after[n]! - before[n]!;
        return { unknown: delta('outside_drop_unknown_sender'), vni: delta('outside_drop_vni'), flags: delta('outside_drop_bad_flags'), short: delta('outside_drop_short'), proto: delta('outside_drop_next_proto'), notLocal: delta('outside_drop_not_local'), spoofed: delta('outside_drop_spoofed_source') };
      };
      // iptables' counters are read again on weftd's next check, within a second: wait for them, then compare.
      await until(`node${k}'s drops counted`, async () => JSON.stringify(await drops()) === JSON.stringify(expected), 5000, 100).catch(() => undefined);
      expect(await drops(), `node${k} (${(await status(k)).engine.details.firewall})`).toEqual(expected);
      // Nothing went back out of the device: no relay to node 3's pod or underlay.
      expect(after.inside_packets! - before.inside_packets!).toBe(0);
      expect((await status(3)).counters.outside_packets).toBe(seenBy3);
      expect(await icmpIn(3)).toBe(icmp3);
    }
    expect(await c.pingPairs([1, 2, 4])).toEqual([]);
  }, 90_000);

  it('restarts each node: the userspace ones after SIGTERM and SIGKILL, the kernel one after SIGKILL keeps forwarding meanwhile, adopts its routes and drops a stale one', async () => {
    await c.stopNode(2, 'SIGTERM');
    await start(2);
    await c.stopNode(3, 'SIGKILL');
    await start(3);

    expect((await c.stopNode(1, 'SIGKILL')).signal).toBe('SIGKILL');
    // weftd is gone; the kernel still forwards with its routes.
    expect(await c.lab.ping(pod(1), c.lab.podIp(pod(4)), { count: 2 })).toBe(true);
    const stale = freeSubnets()[0]!;
    await sh(1, 'ip', 'route', 'add', stale, 'encap', 'ip', 'id', '1', 'dst', '198.18.0.77', 'dev', 'weft0', 'proto', '87');
    await sh(1, 'ip', 'route', 'add', '198.18.1.0/24', 'dev', 'lo', 'proto', '87');
    await start(1);
    const adopted = weftdEvents(c.nodes.get(1)!.weftd!).find((e) => e.event === 'kernel_device');
    expect(adopted).toMatchObject({ adopted: true });
    await until('node 1\'s routes to equal the leases', async () => JSON.stringify(await weftRoutes(1)) === JSON.stringify(expectedRoutes(1, [1, 2, 3, 4])), 10_000, 100);
    expect(await c.pingPairs([1, 2, 3, 4])).toEqual([]);
  }, 90_000);

  it('follows a peer that joins and one that leaves: the route appears, and goes with the lease', async () => {
    await c.startNode(5, 1, ['--release-on-exit']);
    for (const i of [1, 4]) await until(`node${i}'s route to node 5`, async () => (await weftRoutes(i)).includes(`${subnet(5)} -> 198.18.0.5 csum`), 10_000, 100);
    expect(await c.lab.ping(pod(1), c.lab.podIp(pod(5)))).toBe(true);
    expect(await c.lab.ping(pod(5), c.lab.podIp(pod(4)))).toBe(true);
    const gone = subnet(5);
    await c.stopNode(5, 'SIGTERM');
    for (const i of [1, 4]) await until(`node${i}'s route to node 5 gone`, async () => JSON.stringify(await weftRoutes(i)) === JSON.stringify(expectedRoutes(i, [1, 2, 3, 4])), 10_000, 100);
    const r = await c.lab.exec(pod(1), ['ping', '-n', '-c', '1', '-W', '1', gone.replace('.0/24', '.2')], { allowFail: true });
    expect(r.stdout).toMatch(/Destination Net Unreachable/);
    c.nodes.delete(5);
  }, 60_000);

  it('repairs its device when it is deleted or set down under it, routes and all', async () => {
    const weftd = c.nodes.get(1)!.weftd!;
    const repaired = (from: number): Promise<unknown> => until('kernel_device_repaired', () => weftdEvents(weftd, from).find((e) => e.event === 'kernel_device_repaired'), 10_000, 100);
    for (const [how, recreated] of [[['ip', 'link', 'del', 'weft0'], true], [['ip', 'link', 'set', 'weft0', 'down'], false]] as const) {
      const mark = weftd.log().length;
      await sh(1, ...how);
      expect(await repaired(mark)).toMatchObject({ recreated });
      expect(await weftRoutes(1)).toEqual(expectedRoutes(1, [1, 2, 3, 4]));
      expect(await c.lab.ping(pod(1), c.lab.podIp(pod(2)))).toBe(true);
      expect((await status(1)).readiness.status).toBe('ready');
    }
    expect((await status(1)).engine.details.deviceRepairs).toBe(2);
  });

  it('moves its device, routes and filter to another subnet when its own is taken, without restarting', async () => {
    const weftd = c.nodes.get(1)!.weftd!;
    const old = subnet(1);
    const mark = weftd.log().length;
    weftd.kill('SIGSTOP');
    try {
      await c.lab.etcdctl(['del', keyOfSubnet(old)]);
      expect(await createLeaseIfFree(c.lab, old, { nodeName: 'intruder', publicIp: '198.18.0.99', port: 4790, vni: 1, version: 'test' }, 60)).toMatch(/^[0-9a-f]+$/);
    } finally {
      weftd.kill('SIGCONT');
    }
    const ready = await until('node 1 ready on another subnet', () => weftdEvents(weftd, mark).find((e) => e.event === 'ready'), 20_000, 100);
    const moved = String(ready.subnet);
    expect(moved).not.toBe(old);
    c.nodes.get(1)!.subnet = moved;
    expect((await sh(1, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'weft0')).trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`inet ${moved.replace('/24', '/32')} `))]);
    expect(await sh(1, 'nft', 'list', 'table', 'ip', 'weft_kernel')).toContain(`ip daddr != ${moved}`);
    await until('node 1\'s routes: the intruder on its old subnet, and the others', async () => JSON.stringify(await weftRoutes(1)) === JSON.stringify([...expectedRoutes(1, [1, 2, 3, 4]), `${old} -> 198.18.0.99 csum`].sort()), 10_000, 100);
    await until('node 4 routes node 1\'s new subnet', async () => (await weftRoutes(4)).includes(`${moved} -> 198.18.0.1 csum`), 10_000, 100);
    await c.lab.etcdctl(['del', keyOfSubnet(old)]);
  }, 60_000);

  it('leaves no device, route or filter behind on SIGTERM, with nftables and with iptables', async () => {
    for (const i of [1, 4]) {
      const weftd = c.nodes.get(i)!.weftd!;
      expect(await c.stopNode(i, 'SIGTERM')).toEqual({ code: 0, signal: null });
      expect(weftd.log()).not.toMatch(/teardown_failed/);
      await expectNothingLeft(i);
    }
  });

  it('refuses, with exit status 2 and one line, a port already bound and an MTU that does not fit, leaving nothing behind', async () => {
    const holder = c.lab.spawn(ns(1), [process.execPath, '-e', "require('node:dgram').createSocket('udp4').bind(4790, () => console.log('bound')); setTimeout(() => {}, 60000)"]);
    await holder.waitForLog(/bound/, 10_000);
    const run = async (env: Record<string, string>, ...flags: string[]): Promise<{ code: number | null; stderr: string }> => {
      const r = await c.lab.exec(ns(1), [process.execPath, WEFTD, '--etcd-endpoints', c.lab.etcdEndpoint, '--etcd-prefix', PREFIX, '--node-name', 'node1', '--iface', 'eth0', '--metrics-addr', 'off', '--subnet-file', join(c.nodeDir(1), 'refused.env'), '--state-dir', join(c.nodeDir(1), 'state'), ...flags], { allowFail: true, timeoutMs: 20_000, env });
      return { code: r.code, stderr: r.stderr.split('\n').filter((l) => l.startsWith('weftd:')).join('\n') };
    };
    try {
      const bound = await run({ WEFT_ENGINE: 'kernel' });
      expect(bound.code).toBe(2);
      expect(bound.stderr).toMatch(/^weftd: --engine kernel: UDP port 4790 is already bound on this node .*ss -ulpn sport = :4790.* stop that program, or run weft on another port \(weftctl init --port\)$/);
      await expectNothingLeft(1);
    } finally {
      holder.kill('SIGKILL');
      await holder.exited;
    }
    const mtu = await run({}, '--engine', 'kernel', '--mtu', '1480');
    expect(mtu.code).toBe(2);
    expect(mtu.stderr).toMatch(/^weftd: --engine kernel: MTU 1480 leaves no room for the 36 bytes of VXLAN-GPE on the underlay's 1500: .* give --mtu 1464 or less$/);
    await expectNothingLeft(1);
  }, 60_000);
});
