// Nodes joining, vanishing and restarting on the lab, with no restart of the others.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftCluster } from '../lab/cluster.js';
import { rootSkipReason } from '../harness/privilege.js';

describe.skipIf(rootSkipReason())('membership changes (needs root: network namespaces, TUN, weftd)', () => {
  let c: WeftCluster;
  const pod = (node: number): string => c.nodes.get(node)!.pods[0]!;
  const podIp = (node: number): string => c.lab.podIp(pod(node));

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'membership' });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('makes a node that joins later reachable from the running ones', async () => {
    const pid1 = c.nodes.get(1)!.weftd!.pid;
    await c.startNode(3, 1);
    expect(await c.lab.ping(pod(1), podIp(3), { count: 2 })).toBe(true);
    expect(await c.lab.ping(pod(3), podIp(2), { count: 2 })).toBe(true);
    expect(c.nodes.get(1)!.weftd!.pid).toBe(pid1);
    expect(c.nodes.get(1)!.weftd!.log()).toMatch(/"event":"peer_added".*"node":"node3"/);
  });

  it('forgets a node whose lease is deleted, and answers traffic to it with net-unreachable', async () => {
    const subnet3 = c.nodes.get(3)!.subnet!;
    await c.stopNode(3, 'SIGKILL');
    await c.lab.etcdctl(['del', `/weft/network/subnets/${subnet3.replace('/', '-')}`]);
    await c.nodes.get(1)!.weftd!.waitForLog(/"event":"peer_removed".*"node":"node3"/, 10_000);
    const r = await c.lab.exec(pod(1), ['ping', '-c', '1', '-W', '2', podIp(3)], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/Destination Net Unreachable/);
    expect((await c.counters(1)).inside_icmp_unreachable).toBeGreaterThanOrEqual(1);
  });

  it('gives a killed node whose lease was deleted its old subnet back from its local record', async () => {
    const before = c.nodes.get(3)!.subnet;
    const s = await c.startNode(3);
    expect(s.subnet).toBe(before);
    expect(await c.lab.ping(pod(1), podIp(3), { count: 2, timeoutS: 8 })).toBe(true);
  });

  it('on SIGTERM removes the TUN, keeps the lease, and gets the same subnet on restart', async () => {
    const before = c.nodes.get(2)!.subnet!;
    const exit = await c.stopNode(2, 'SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    const link = await c.lab.exec(c.lab.nodeNs(2), ['ip', 'link', 'show', 'weft0'], { allowFail: true });
    expect(link.code).not.toBe(0);
    expect(await c.lab.etcdctl(['get', `/weft/network/subnets/${before.replace('/', '-')}`])).toContain('"nodeName":"node2"');
    expect((await c.startNode(2)).subnet).toBe(before);
    expect(await c.lab.ping(pod(1), podIp(2), { count: 2, timeoutS: 8 })).toBe(true);
  });

  it('after SIGKILL restarts on the same subnet and traffic flows again', async () => {
    const before = c.nodes.get(2)!.subnet!;
    const exit = await c.stopNode(2, 'SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    expect((await c.startNode(2)).subnet).toBe(before);
    expect(await c.lab.ping(pod(3), podIp(2), { count: 2, timeoutS: 8 })).toBe(true);
    expect(await c.lab.ping(pod(2), podIp(1), { count: 2, timeoutS: 8 })).toBe(true);
  });
});
