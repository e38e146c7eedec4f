// weftd's HTTP endpoints and `weftctl status` on a 2-node lab cluster. Each
// weftd listens on the default 127.0.0.1:9474 of its own node namespace, so
// everything is asked from inside that namespace.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEFTCTL, WeftCluster } from '../lab/cluster.js';
import { rootSkipReason } from '../harness/privilege.js';
import { VERSION } from '../../src/version.js';

/** Sample lines of a Prometheus exposition as "name{labels}" -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m && !line.startsWith('#')) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe.skipIf(rootSkipReason())('metrics, health and weftctl status on 2 nodes (needs root: network namespaces, TUN, weftd)', () => {
  let c: WeftCluster;
  const pod = (node: number): string => c.nodes.get(node)!.pods[0]!;

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'observe' });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  });

  const metrics = async (i: number): Promise<Map<string, number>> => {
    const r = await c.http(i, '/metrics');
    expect(r.code).toBe(200);
    return samples(r.body);
  };

  it('answers /healthz and /readyz: alive, ready', async () => {
    for (const i of [1, 2]) {
      const health = await c.http(i, '/healthz');
      expect(health.code).toBe(200);
      expect(JSON.parse(health.body)).toEqual({ status: 'alive', reasons: ['weftd is running'] });
      const ready = await c.http(i, '/readyz');
      expect(ready.code).toBe(200);
      expect(JSON.parse(ready.body)).toEqual({ status: 'ready', reasons: [] });
    }
  });

  it('shows one peer, a held lease, etcd connected, and packet counters that grow when pods ping', async () => {
    const before = await metrics(1);
    expect(before.get('weft_peers')).toBe(1);
    expect(before.get('weft_etcd_connected')).toBe(1);
    expect(before.get('weft_lease_expires_in_seconds')).toBeGreaterThan(0);
    expect(before.get('weft_readiness{status="ready"}')).toBe(1);
    expect(before.get(`weft_build_info{version="${VERSION}",engine="native"}`)).toBe(1);
    expect(before.get('weft_drops_total{direction="outside",reason="spoofed_source"}')).toBe(0);

    expect(await c.lab.ping(pod(1), c.lab.podIp(pod(2)), { count: 3 })).toBe(true);
    const after = await metrics(1);
    const grew = (name: string): number => after.get(name)! - before.get(name)!;
    expect(grew('weft_inside_packets_total')).toBeGreaterThanOrEqual(3);
    expect(grew('weft_outside_packets_total')).toBeGreaterThanOrEqual(3);
    expect(grew('weft_inside_bytes_total')).toBeGreaterThanOrEqual(3 * 84);
    expect(grew('weft_outside_bytes_total')).toBeGreaterThanOrEqual(3 * 84);

    // counters() reads the same numbers from /status, exactly.
    const counters = await c.counters(1, 0);
    expect(counters.inside_packets).toBeGreaterThanOrEqual(after.get('weft_inside_packets_total')!);
    expect(counters.outside_drop_vni).toBe(after.get('weft_drops_total{direction="outside",reason="vni"}'));
  });

  it('prints the node, its subnet and its peer in weftctl status, run in the node namespace', async () => {
    const r = await c.lab.exec(c.lab.nodeNs(1), [process.execPath, WEFTCTL, 'status']);
    const sub1 = c.nodes.get(1)!.subnet!.replace(/\./g, '\\.');
    const sub2 = c.nodes.get(2)!.subnet!.replace(/\./g, '\\.');
    expect(r.stdout).toMatch(/^node\s+node1 \(weftd \S+, running\)$/m);
    expect(r.stdout).toMatch(/^readiness\s+ready$/m);
    expect(r.stdout).toMatch(new RegExp(`^subnet\\s+${sub1} of 198\\.19\\.0\\.0/16$`, 'm'));
    expect(r.stdout).toMatch(/^engine\s+native \(queues \d+/m);
    expect(r.stdout).toMatch(/^etcd\s+connected /m);
    expect(r.stdout).toMatch(/^peers: 1$/m);
    expect(r.stdout).toMatch(new RegExp(`^${sub2}\\s+node2\\s+198\\.18\\.0\\.2:4790$`, 'm'));
    expect(r.stdout).toMatch(/^inside \(pods -> nodes\)\s+[1-9]\d*\s+[1-9]\d*\s+\d+$/m);
  });

  it('prints parseable JSON with weftctl status --json', async () => {
    const r = await c.lab.exec(c.lab.nodeNs(2), [process.execPath, WEFTCTL, 'status', '--json']);
    const s = JSON.parse(r.stdout) as { node: string; subnet: string; state: string; peers: { node: string; subnet: string }[]; counters: Record<string, number> };
    expect(s.node).toBe('node2');
    expect(s.state).toBe('running');
    expect(s.subnet).toBe(c.nodes.get(2)!.subnet);
    expect(s.peers).toEqual([expect.objectContaining({ node: 'node1', subnet: c.nodes.get(1)!.subnet })]);
    expect(s.counters.outside_packets).toBeGreaterThanOrEqual(3);
  });

  it('says weftd is not listening when weftctl status asks the wrong address', async () => {
    const r = await c.lab.exec(c.lab.nodeNs(1), [process.execPath, WEFTCTL, 'status', '--metrics-addr', '127.0.0.1:9'], { allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("weftctl: weftd is not running or not listening on 127.0.0.1:9 (ECONNREFUSED); see weftd's --metrics-addr\n");
  });
});
