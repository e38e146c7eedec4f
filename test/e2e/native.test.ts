// The native engine on the lab: every packet size through it, a 200 MB TCP
// transfer, and a full-rate spray of garbage that it must survive and count.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftCluster } from '../lab/cluster.js';
import { rootSkipReason } from '../harness/privilege.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** UDP datagrams the kernel of a namespace dropped on receive (socket buffer full, bad checksum). */
async function kernelUdpDrops(c: WeftCluster, ns: string): Promise<number> {
  const snmp = (await c.lab.exec(ns, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = snmp.map((l) => l.split(/\s+/).slice(1));
  const get = (k: string): number => Number(values![names!.indexOf(k)]);
  return get('InErrors');
}

describe.skipIf(rootSkipReason())('native engine on the lab (needs root: network namespaces, TUN, weftd)', () => {
  let c: WeftCluster;
  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'native', engine: 'native' });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  });
  const pod = (node: number): string => c.nodes.get(node)!.pods[0]!;

  it('is idle when there is no traffic: no busy polling', async () => {
    const pid = c.nodes.get(2)!.weftd!.pid;
    const cpu = (): number => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) / 100;
    };
    const before = cpu();
    await new Promise((r) => setTimeout(r, 3000));
    // Two workers spinning would burn ~6 CPU-seconds here; the stats log and timers cost milliseconds.
    expect(cpu() - before).toBeLessThan(0.15);
  });

  it('echoes every ICMP size from 1 byte to the MTU, and tells a wider sender the MTU', async () => {
    const dst = c.lab.podIp(pod(2));
    // 1464-byte MTU: 1436 bytes of ICMP data fill it (20 IP + 8 ICMP).
    const sweep = await c.lab.exec(
      pod(1),
      ['sh', '-c', `fails=0; for s in $(seq 1 1436); do ping -c 1 -W 1 -M do -s $s ${dst} >/dev/null || { echo FAIL $s; fails=$((fails+1)); }; done; echo fails=$fails`],
      { timeoutMs: 120_000 },
    );
    expect(sweep.stdout.trim().split('\n').at(-1)).toBe('fails=0');
    // A pod whose link is wider than the tunnel hears from its node's kernel
    // (forwarding into weft0, DF set) that the path MTU is 1464.
    const [wide] = await c.lab.addPods(1, 1, { network: c.nodes.get(1)!.subnet!.split('/')[0]!, prefixLen: 24 }, 1500);
    const over = await c.lab.exec(wide!, ['ping', '-c', '2', '-W', '1', '-M', 'do', '-s', '1437', dst], { allowFail: true });
    expect(over.code).not.toBe(0);
    expect(over.stdout + over.stderr).toMatch(/Frag needed and DF set \(mtu = 1464\)|mtu = 1464|Message too long/);
    expect(await c.lab.ping(wide!, dst, { count: 1 })).toBe(true);
  }, 150_000);

  it('moves 200 MB over TCP between pods, intact', async () => {
    const dst = pod(2);
    const sink = c.lab.spawn(dst, [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'sink', '5002']);
    await sink.waitForLog(/listening/, 10_000);
    const sent = await c.lab.exec(pod(1), [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'send', c.lab.podIp(dst), '5002', String(200 * 1024 * 1024)], { timeoutMs: 90_000 });
    const received = await sink.waitForLog(/^\d+ [0-9a-f]{64}$/, 30_000);
    expect(sent.stdout.trim()).toMatch(/^209715200 [0-9a-f]{64}$/);
    expect(received.trim()).toBe(sent.stdout.trim());
  }, 120_000);

  it('caps TSO super-packets at its segment limit, so a small MSS still flows', async () => {
    const link = await c.lab.exec(c.lab.nodeNs(1), ['ip', '-d', 'link', 'show', 'weft0']);
    expect(link.stdout).toMatch(/gso_max_segs 64\b/);
    const dst = c.lab.podIp(pod(2));
    const srv = c.lab.spawn(pod(2), ['iperf3', '-s', '-1', '--forceflush', '-B', dst]);
    await srv.waitForLog(/Server listening/, 5000);
    // MSS 200: a 64 KB super-packet would be 300+ segments without the cap,
    // dropped as malformed, and the connection would stall.
    const r = await c.lab.exec(pod(1), ['iperf3', '-c', dst, '-M', '200', '-t', '2', '-J'], { timeoutMs: 30_000 });
    const end = (JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } }).end;
    expect(end.sum_received.bytes).toBeGreaterThan(4 * 1024 * 1024);
    expect((await c.counters(1)).inside_drop_malformed).toBe(0);
  }, 60_000);

  it('finishes bulk TCP over a path narrower than the underlay interface (route MTU 1400), and tells a DF sender the path MTU', async () => {
    const n1 = c.lab.nodeNs(1);
    const dst = c.lab.podIp(pod(2));
    await c.lab.exec(n1, ['ip', 'route', 'add', `${c.lab.nodeIp(2)}/32`, 'dev', 'eth0', 'mtu', '1400']);
    try {
      const sink = c.lab.spawn(pod(2), [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'sink', '5003']);
      await sink.waitForLog(/listening/, 10_000);
      const t0 = Date.now();
      const sent = await c.lab.exec(pod(1), [process.execPath, join(FIXTURES, 'tcp_transfer.mjs'), 'send', dst, '5003', String(20 * 1024 * 1024)], { timeoutMs: 60_000 });
      const received = await sink.waitForLog(/^\d+ [0-9a-f]{64}$/, 30_000);
      process.stdout.write(`[native] 20 MiB over a path MTU of 1400: ${((20 * 8 * 1.048576) / ((Date.now() - t0) / 1000)).toFixed(0)} Mbit/s\n`);
      expect(sent.stdout.trim()).toMatch(/^20971520 [0-9a-f]{64}$/);
      expect(received.trim()).toBe(sent.stdout.trim());
      // A DF packet longer than the path allows: ICMP fragmentation-needed with the inner MTU (1400 - 36).
      const big = await c.lab.exec(pod(1), ['ping', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', '1400', dst], { allowFail: true });
      expect(`${big.stdout}${big.stderr}`).toMatch(/mtu = 1364|mtu=1364/);
      expect((await c.counters(1)).inside_drop_too_big).toBeGreaterThan(0);
      expect(await c.lab.ping(pod(1), dst)).toBe(true);
    } finally {
      await c.lab.exec(n1, ['ip', 'route', 'del', `${c.lab.nodeIp(2)}/32`], { allowFail: true });
    }
  }, 120_000);

  it('survives 3 s of random datagrams at full rate, counting every one, and keeps forwarding', async () => {
    const node2 = c.lab.nodeNs(2);
    const before = await c.counters(2, 2500); // after the last test's traffic has been logged
    const kernelBefore = await kernelUdpDrops(c, node2);
    const spray = await c.lab.exec(c.lab.nodeNs(1), [process.execPath, '--import', 'tsx', join(FIXTURES, 'udp_spray.ts'), c.lab.nodeIp(2), '4790', 'random', '3s'], { timeoutMs: 30_000 });
    const sent = Number(spray.stdout.trim());
    expect(sent).toBeGreaterThan(10_000);
    const after = await c.counters(2, 2500);
    const kernelDropped = (await kernelUdpDrops(c, node2)) - kernelBefore;
    const counted = Object.keys(after)
      .filter((k) => k.startsWith('outside_drop_') || k === 'outside_packets')
      .reduce((s, k) => s + (after[k] ?? 0) - (before[k] ?? 0), 0);
    expect(counted + kernelDropped).toBe(sent);
    expect(counted).toBeGreaterThan(0);
    expect(c.nodes.get(2)!.weftd!.log()).not.toMatch(/"level":(50|60)/);
    expect(await c.lab.ping(pod(1), c.lab.podIp(pod(2)), { count: 2 })).toBe(true);
  }, 60_000);
});
