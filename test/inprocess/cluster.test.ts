// Whole weftd control planes in one process (test/harness/memory_cluster.ts):
// the daemons lease, watch and forward over in-memory TUNs and underlay
// against the in-memory registry, on a manual clock. No root, no etcd, no
// real seconds: hours of leases, outages, clashes and churn in seconds.

import { existsSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatIp, parseCidr } from '../../src/net/ipv4.js';
import { ClusterNode, MemoryCluster, ping } from '../harness/memory_cluster.js';

const HOUR_MS = 3_600_000;
let cluster: MemoryCluster;
beforeEach(() => {
  cluster = new MemoryCluster();
});
afterEach(async () => {
  await cluster.close();
});

describe('a weft cluster in one process (in-memory registry, TUN, underlay; manual clock)', () => {
  it('three daemons lease distinct subnets, configure their hosts, route to each other, and pods ping across', async () => {
    const nodes = await cluster.startAll(3);
    expect(new Set(nodes.map((x) => x.status().subnet)).size).toBe(3);
    for (const x of nodes) {
      expect(x.status().readiness).toEqual({ status: 'ready', reasons: [] });
      expect(x.host.tunConfig).toEqual({ dev: 'mem0', addr: `${formatIp(parseCidr(x.status().subnet!).base)}/16`, mtu: 1500 - 36 });
      expect(x.host.encapFilter).toBe(true);
    }
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await ping(a, c);
    await ping(c, a);
    await ping(b, a, { size: 1000 });
    expect(c.status().counters).toMatchObject({ outside_packets: 1, inside_packets: 1 });
  });

  it('keeps every lease for two days of simulated time with an hour TTL, and forwards throughout', async () => {
    const [a, b] = (await cluster.startAll(2, { leaseTtlS: 3600 })) as [ClusterNode, ClusterNode];
    const leases = (await cluster.admin.listLeases()).records.map((r) => r.etcdLease);
    for (let h = 0; h < 48; h += 12) {
      await cluster.elapse(12 * HOUR_MS);
      await ping(a, b);
    }
    for (const x of [a, b]) {
      expect(x.status()).toMatchObject({ renewals: 48 * 3, reacquisitions: 0, state: 'running' });
      expect(x.events('lease_lost')).toEqual([]);
    }
    expect((await cluster.admin.listLeases()).records.map((r) => r.etcdLease)).toEqual(leases);
  }, 60_000);

  it('an etcd outage longer than the TTL: forwarding goes on with the last table, readiness degrades then fails, and afterwards every node holds its subnet again', async () => {
    const [a, b] = (await cluster.startAll(2, { leaseTtlS: 60, etcdGraceS: 120 })) as [ClusterNode, ClusterNode];
    const subnets = [a.status().subnet, b.status().subnet];
    cluster.store.setOutage(true);
    await cluster.elapse(30_000);
    expect(a.status().readiness.status).toBe('degraded');
    await ping(a, b);
    await cluster.elapse(150_000);
    expect(a.status().readiness.status).toBe('not_ready');
    expect(a.status().readiness.reasons[0]).toMatch(/^etcd unreachable for \d+ s \(grace 120 s\)/);
    await ping(b, a);
    cluster.store.setOutage(false);
    // Re-acquisition writes the last-subnet record to disk: real I/O, which a loaded machine can make slower than one jump of the manual clock allows.
    await cluster.until('both nodes re-acquire their subnets', () => [a, b].every((x) => x.status().reacquisitions === 1 && x.status().readiness.status === 'ready'), 15_000);
    for (const x of [a, b]) {
      expect(x.status().readiness).toEqual({ status: 'ready', reasons: [] });
      expect(x.status().reacquisitions).toBe(1);
      expect(x.events('lease_reacquired')).toHaveLength(1);
    }
    expect([a.status().subnet, b.status().subnet]).toEqual(subnets);
    expect((await cluster.admin.listLeases()).records).toHaveLength(2);
    await ping(a, b);
  }, 30_000);

  it('a stop tears the host down (filter, masquerade, TUN) and, with --release-on-exit, gives the subnet back and removes the subnet file', async () => {
    const [a, b] = (await cluster.startAll(2, { ipMasq: true, releaseOnExit: true })) as [ClusterNode, ClusterNode];
    const file = b.options().subnetFile;
    expect(readFileSync(file, 'utf8')).toContain(`FLANNEL_SUBNET=${formatIp(parseCidr(b.status().subnet!).base + 1)}/24`);
    expect(b.host).toMatchObject({ encapFilter: true, masquerade: true });
    await b.stop();
    expect(b.ended).toBeNull();
    expect(b.host).toMatchObject({ encapFilter: false, masquerade: false });
    expect(b.tun.closed).toBe(true);
    expect(existsSync(file)).toBe(false);
    expect((await cluster.admin.listLeases()).records.map((r) => r.lease.nodeName)).toEqual(['n1']);
    await cluster.until('n1 drops the route to n2', () => a.status().peers.length === 0);
  });

  it('a restarted daemon keeps its subnet and its peers route to its new instance', async () => {
    const [a, b] = (await cluster.startAll(2)) as [ClusterNode, ClusterNode];
    const subnet = b.status().subnet;
    await b.stop();
    expect(b.ended).toBeNull();
    await b.start();
    expect(b.status().subnet).toBe(subnet);
    expect(b.events('lease_acquired').map((x) => x.how)).toEqual(['kept']);
    expect(a.status().peers.map((p) => [p.node, p.subnet])).toEqual([['n2', subnet]]);
    await ping(a, b);
    await ping(b, a);
    expect(a.ended).toBeUndefined();
  });

  it('a compaction while a node is cut off: it re-lists on its return and routes to the node that joined meanwhile', async () => {
    const [a, b] = (await cluster.startAll(2)) as [ClusterNode, ClusterNode];
    a.registry.setPartitioned(true);
    const c = cluster.add('n3', 2);
    await c.start();
    cluster.store.compact();
    await cluster.elapse(10_000);
    expect(a.status().peers.map((p) => p.node)).toEqual(['n2']);
    a.registry.setPartitioned(false);
    await cluster.until('a routes to n3', () => a.status().peers.length === 2);
    await ping(a, c);
    await ping(c, b);
  });

  it('a second machine under the same node name takes the subnet over; the first stops with WEFT_NODE_NAME_TAKEN and the peers route to the second', async () => {
    const [a, b] = (await cluster.startAll(2)) as [ClusterNode, ClusterNode];
    const subnet = b.status().subnet;
    const clone = cluster.add('n2', 9);
    await clone.start();
    expect(clone.status().subnet).toBe(subnet);
    await cluster.until('the first n2 stops', () => b.ended !== undefined);
    expect(b.ended).toMatchObject({ code: 'WEFT_NODE_NAME_TAKEN' });
    await cluster.until('a routes to the clone', () => a.status().peers.some((p) => p.publicIp === clone.ip));
    await ping(a, clone);
  });

  it('200 daemons starting at once get 200 distinct subnets and complete tables; 20 leave and 20 join, and every table follows', async () => {
    const nodes = await cluster.startAll(200);
    expect(new Set(nodes.map((x) => x.status().subnet)).size).toBe(200);
    const leaving = nodes.slice(0, 20);
    await Promise.all(leaving.map((x) => x.stop()));
    // Their leases are kept (no --release-on-exit) and run out after the TTL: give them back as an operator would.
    for (const r of (await cluster.admin.listLeases()).records) if (leaving.some((x) => x.name === r.lease.nodeName)) await cluster.admin.releaseLease(r);
    const joining = Array.from({ length: 20 }, (_, i) => cluster.add(`m${i + 1}`, 300 + i));
    await Promise.all(joining.map((x) => x.start()));
    const live = [...nodes.slice(20), ...joining];
    await cluster.until('every live table is the other live nodes', () => live.every((x) => x.status().peers.length === 199));
    for (const x of live) expect(x.status().peers.map((p) => p.node).sort()).toEqual(live.filter((y) => y !== x).map((y) => y.name).sort());
    await ping(joining[0]!, live[0]!);
  }, 60_000);
});
