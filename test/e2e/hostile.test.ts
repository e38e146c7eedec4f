// What an attacker or a careless operator does to a running cluster, and
// what weft does about it: a second weftd on a node, leases naming unusable
// public IPs.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { PREFIX, WEFTD, WeftCluster } from '../lab/cluster.js';

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
    const exit = await Promise.race([second.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('the second weftd did not exit')), 15_000))]);
    expect(exit.code).toBe(1);
    expect(second.log()).toContain(`another weftd already runs on this node (pid ${first.pid}, node node1`);
    expect(await c.lab.ping(c.pods()[0]!.ns, c.pods()[1]!.ip)).toBe(true);
    const leases = JSON.parse(await c.weftctl(['leases', '--json'])) as { leases: { node: string }[] };
    expect(leases.leases.map((l) => l.node).sort()).toEqual(['node1', 'node2']);
  });
});
