// A node without a subnet, in one process (memory_cluster.ts): its subnet
// taken by another node, or a full network. The daemon stays up, says why,
// marks the subnet file, and takes a subnet as soon as one is free.

import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSubnetFile } from '../../src/host/subnet_env.js';
import { formatIp, parseCidr } from '../../src/net/ipv4.js';
import type { SubnetLease } from '../../src/registry/schema.js';
import { ClusterNode, MemoryCluster, ping } from '../harness/memory_cluster.js';

let cluster: MemoryCluster;
beforeEach(() => {
  cluster = new MemoryCluster();
});
afterEach(async () => {
  await cluster.close();
});

const INTRUDER: SubnetLease = { nodeName: 'intruder', publicIp: '198.18.0.99', port: 4790, vni: 1, version: 'test', engine: 'kernel', instance: 'i' };

/** What the node's subnet file says now. */
function subnetFile(node: ClusterNode): ReturnType<typeof parseSubnetFile> {
  const path = node.options().subnetFile;
  return parseSubnetFile(readFileSync(path, 'utf8'), path);
}

/** Hands `node`'s subnet to another node behind its back: its key deleted and written anew by the intruder. */
async function steal(node: ClusterNode): Promise<string> {
  const subnet = node.status().subnet!;
  const rec = (await cluster.admin.listLeases()).records.find((r) => r.lease.nodeName === node.name)!;
  await cluster.admin.releaseLease(rec);
  expect(await cluster.admin.createLease(parseCidr(subnet), INTRUDER, 600)).toBeDefined();
  return subnet;
}

describe('a node that loses its subnet or finds none free (in-memory registry, TUN, underlay; manual clock)', () => {
  it('a subnet taken by another node: the node stops forwarding for it, says so in the subnet file, and takes another', async () => {
    const [a, b] = (await cluster.startAll(2)) as [ClusterNode, ClusterNode];
    const oldTun = b.tun;
    const lost = await steal(b);
    await cluster.until('b holds another subnet', () => b.status().state === 'running' && b.status().subnet !== lost);
    const lostEvent = b.events('subnet_lost');
    expect(lostEvent).toHaveLength(1);
    expect(lostEvent[0]).toMatchObject({ subnet: lost, reason: 'now leased by node intruder (198.18.0.99)' });
    expect(b.ended).toBeUndefined();
    expect(oldTun.closed).toBe(true);
    const now = b.status().subnet!;
    expect(subnetFile(b).held?.subnet).toEqual(parseCidr(now));
    expect(b.status()).toMatchObject({ subnetLosses: 1, noSubnet: null, readiness: { status: 'ready' } });
    expect(b.host.tunConfig?.addr).toBe(`${formatIp(parseCidr(now).base)}/16`);
    // The others route the lost subnet to its new holder and the new one to b.
    await cluster.until('a routes to both', () => a.status().peers.length === 2);
    expect(Object.fromEntries(a.status().peers.map((p) => [p.subnet, p.node]))).toEqual({ [lost]: 'intruder', [now]: 'n2' });
    await ping(a, b);
    await ping(b, a);
    // The totals keep counting across the change of subnet.
    expect(b.status().counters?.inside_packets).toBeGreaterThanOrEqual(1);
    // systemd heard of each state: forwarding, the loss, forwarding again.
    expect(b.notes.map((n) => n.STATUS)).toEqual([expect.stringMatching(/^forwarding for /), `not forwarding: lost ${lost}: now leased by node intruder (198.18.0.99); taking another subnet`, `forwarding for ${now}, 2 peers`]);
    expect(b.notes.filter((n) => n.READY === 1)).toHaveLength(1);
  });

  it('a full network: a new node stays up, not ready, says why, and takes the first subnet released; a low rate of logs meanwhile', async () => {
    // A /22 of /24s holds three nodes: the first /24 is never handed out.
    const nodes = await cluster.startAll(3, { network: '198.19.0.0/22', releaseOnExit: true });
    const d = cluster.add('n4', 3);
    await d.start();
    const waiting = 'waiting for a free /24 in 198.19.0.0/22 (all 3 leased; the first subnet is never handed out)';
    expect(d.status()).toMatchObject({ state: 'waiting', subnet: null, noSubnet: waiting, readiness: { status: 'not_ready', reasons: [`no subnet: ${waiting}`] } });
    expect(subnetFile(d).none).toEqual({ network: parseCidr('198.19.0.0/22'), reason: waiting });
    expect(d.notes).toEqual([{ READY: 1, STATUS: `not forwarding: ${waiting}`, MAINPID: process.pid }]);
    for (let t = 0; t < 12 * 60_000; t += 10_000) await cluster.elapse(10_000);
    expect(d.status().state).toBe('waiting');
    // Once when it starts waiting, then every five minutes (at the first retry after, which a loaded machine's real I/O can delay by a step).
    const logged = d.events('network_full').map((e) => Number(e.waiting_s));
    expect(logged).toHaveLength(3);
    expect(logged[0]).toBe(0);
    for (const k of [1, 2]) expect(logged[k]! - logged[k - 1]!).toBeGreaterThanOrEqual(300);
    for (const k of [1, 2]) expect(logged[k]! - logged[k - 1]!).toBeLessThanOrEqual(340);

    const freed = nodes[1]!.status().subnet;
    await nodes[1]!.stop();
    await cluster.until('n4 takes the released subnet', () => d.status().state === 'running', 5_000);
    expect(d.status()).toMatchObject({ subnet: freed, noSubnet: null, readiness: { status: 'ready' } });
    expect(subnetFile(d).held?.subnet).toEqual(parseCidr(freed!));
    expect(d.events('subnet_free')).toHaveLength(1);
    await ping(nodes[0]!, d);
  });

  it('a subnet lost on a full network: the node waits, naming what it lost, and takes the subnet back once it is free', async () => {
    const [a, b, c] = (await cluster.startAll(3, { network: '198.19.0.0/22' })) as [ClusterNode, ClusterNode, ClusterNode];
    const lost = await steal(b);
    const waiting = `lost ${lost}: now leased by node intruder (198.18.0.99); waiting for a free /24 in 198.19.0.0/22 (all 3 leased; the first subnet is never handed out)`;
    await cluster.until('b waits for a free subnet', () => b.status().noSubnet === waiting);
    expect(b.status()).toMatchObject({ state: 'waiting', subnet: null, readiness: { status: 'not_ready', reasons: [`no subnet: ${waiting}`] } });
    expect(b.events('subnet_lost')).toHaveLength(1);
    expect(b.notes.map((n) => n.STATUS).slice(1)).toEqual([`not forwarding: lost ${lost}: now leased by node intruder (198.18.0.99); taking another subnet`, `not forwarding: ${waiting}`]);
    // The file never names the lost subnet again; it says what was lost.
    expect(subnetFile(b).none?.lost).toEqual(parseCidr(lost));

    const rec = (await cluster.admin.listLeases()).records.find((r) => r.lease.nodeName === 'intruder')!;
    await cluster.admin.releaseLease(rec);
    await cluster.until('b takes its subnet back', () => b.status().state === 'running', 5_000);
    expect(b.status().subnet).toBe(lost);
    await cluster.until('every table complete', () => [a, b, c].every((x) => x.status().peers.length === 2));
    await ping(c, b);
  });
});
