// --ip-masq on the lab: pods reaching an "outside" host (a lab namespace on
// the underlay that runs no weftd) leave with their node's address; pod to
// pod traffic keeps pod addresses; the rules live in weft's own nftables
// table (or iptables chain when nft is missing), are replaced rather than
// duplicated on restart and removed on SIGTERM.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encapFilterNftScript } from '../../src/host/encap_filter.js';
import { IPT_CHAIN, iptablesRules, nftInstallScript, nftRemoveScript } from '../../src/host/masquerade.js';
import { formatIp, parseCidr } from '../../src/net/ipv4.js';
import { WEFTCTL, WeftCluster } from '../lab/cluster.js';
import type { LabProcess } from '../lab/lab.js';
import { pathWithout } from '../lab/path_without.js';
import { rootSkipReason } from '../harness/privilege.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const PEER_ADDR = join(FIXTURES, 'peer_addr.mjs');

describe('pod encapsulation filter (text)', () => {
  it('drops UDP to the port from the cluster network on input and forward, in one nft transaction', () => {
    expect(encapFilterNftScript(parseCidr('10.244.0.0/16'), 4790)).toBe(
      [
        'add table ip weft_encap',
        'delete table ip weft_encap',
        'table ip weft_encap {',
        '  chain input {',
        '    type filter hook input priority filter; policy accept;',
        '    ip saddr 10.244.0.0/16 udp dport 4790 counter drop comment "weft: pods may not send encapsulated traffic"',
        '  }',
        '  chain forward {',
        '    type filter hook forward priority filter; policy accept;',
        '    ip saddr 10.244.0.0/16 udp dport 4790 counter drop comment "weft: pods may not send encapsulated traffic"',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
});

describe('masquerade rules (text)', () => {
  const network = parseCidr('10.244.0.0/16');
  const subnet = parseCidr('10.244.1.0/24');

  it('recreates table ip weft in one nft transaction', () => {
    expect(nftInstallScript(network, subnet)).toBe(
      [
        'add table ip weft',
        'delete table ip weft',
        'table ip weft {',
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        '    ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return comment "weft: pod to pod, no NAT"',
        '    ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random comment "weft: pod to outside"',
        '    ip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return comment "weft: outside to a local pod, no NAT"',
        '    ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random comment "weft: outside to a remote pod"',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    expect(nftRemoveScript()).toBe('add table ip weft\ndelete table ip weft\n');
  });

  it('gives iptables the same four rules', () => {
    expect(iptablesRules(network, subnet).map((r) => r.join(' '))).toEqual([
      '-s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment weft: pod to pod, no NAT -j RETURN',
      '-s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment weft: pod to outside -j MASQUERADE --random-fully',
      '! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment weft: outside to a local pod, no NAT -j RETURN',
      '! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment weft: outside to a remote pod -j MASQUERADE --random-fully',
    ]);
  });
});

describe.skipIf(rootSkipReason())('--ip-masq (needs root: network namespaces, TUN, weftd, nftables)', () => {
  let c: WeftCluster;
  let outsideNs: string;
  let outsideIp: string;
  let port = 7100;
  const pod = (node: number): string => c.nodes.get(node)!.pods[0]!;
  const podIp = (node: number): string => c.lab.podIp(pod(node));
  const nodeNs = (node: number): string => c.lab.nodeNs(node);

  /** The source address a TCP connection from `clientNs` to `host` arrives with, as the server in `serverNs` saw it. */
  async function seenBy(serverNs: string, clientNs: string, host: string): Promise<string> {
    const p = String(++port);
    const server = c.lab.spawn(serverNs, [process.execPath, PEER_ADDR, 'server', p, '1']);
    try {
      await server.waitForLog(/^listening$/, 10_000);
      const client = await c.lab.exec(clientNs, [process.execPath, PEER_ADDR, 'client', host, p], { timeoutMs: 15_000 });
      const peer = (await server.waitForLog(/^peer /, 5000)).slice('peer '.length).trim();
      expect(client.stdout.trim()).toBe(peer);
      return peer;
    } finally {
      server.kill();
    }
  }

  /** weft's nft rules in node's namespace (the lines carrying weft's comments); [] when the table is absent. */
  async function nftRules(node: number): Promise<string[]> {
    const r = await c.lab.exec(nodeNs(node), ['nft', 'list', 'table', 'ip', 'weft'], { allowFail: true });
    if (r.code !== 0) {
      expect(r.stderr).toMatch(/No such file or directory/);
      return [];
    }
    return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.includes('comment "weft:'));
  }

  async function nftTables(node: number): Promise<string[]> {
    return (await c.lab.exec(nodeNs(node), ['nft', 'list', 'tables'])).stdout.trim().split('\n').filter(Boolean);
  }

  /** `iptables -t nat -S` of a chain in node's namespace; [] when the chain is absent. */
  async function iptables(node: number, chain: string): Promise<string[]> {
    const r = await c.lab.exec(nodeNs(node), ['iptables', '-w', '5', '-t', 'nat', '-S', chain], { allowFail: true });
    return r.code === 0 ? r.stdout.trim().split('\n').filter(Boolean) : [];
  }

  async function stop(p: LabProcess, signal: NodeJS.Signals): Promise<{ code: number | null; signal: string | null }> {
    p.kill(signal);
    return p.exitWithin(10_000);
  }

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'ipmasq', flags: ['--ip-masq'] });
    // The outside host: a namespace on the underlay (198.18.0.3) that runs no weftd.
    const i = await c.lab.addNode();
    outsideNs = c.lab.nodeNs(i);
    outsideIp = c.lab.nodeIp(i);
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('installs table ip weft on each node while weftd runs', async () => {
    for (const node of [1, 2]) {
      const subnet = c.nodes.get(node)!.subnet!;
      expect(await nftRules(node)).toEqual([
        'ip saddr 198.19.0.0/16 ip daddr 198.19.0.0/16 return comment "weft: pod to pod, no NAT"',
        'ip saddr 198.19.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random comment "weft: pod to outside"',
        `ip saddr != 198.19.0.0/16 ip daddr ${subnet} return comment "weft: outside to a local pod, no NAT"`,
        'ip saddr != 198.19.0.0/16 ip daddr 198.19.0.0/16 masquerade fully-random comment "weft: outside to a remote pod"',
      ]);
      expect(c.nodes.get(node)!.weftd!.log()).toMatch(/"event":"ip_masq","backend":"nftables"/);
      expect(c.subnetEnv(node).FLANNEL_IPMASQ).toBe('true');
    }
    // Nothing outside the lab's node namespaces was touched: the outside host has no weft table.
    expect((await c.lab.exec(outsideNs, ['nft', 'list', 'ruleset'])).stdout).not.toMatch(/weft/);
  });

  it("gets a pod to an outside host with its node's address", async () => {
    expect(await seenBy(outsideNs, pod(1), outsideIp)).toBe(c.lab.nodeIp(1));
    expect(await seenBy(outsideNs, pod(2), outsideIp)).toBe(c.lab.nodeIp(2));
  });

  it('never NATs pod to pod traffic across nodes', async () => {
    expect(await seenBy(pod(2), pod(1), podIp(2))).toBe(podIp(1));
    expect(await seenBy(pod(1), pod(2), podIp(1))).toBe(podIp(2));
  });

  it("gives outside traffic to a remote pod the node's TUN address, and none to a local pod", async () => {
    // The outside host routes the pod network via node 1 (inside its own namespace).
    await c.lab.exec(outsideNs, ['ip', 'route', 'replace', '198.19.0.0/16', 'via', c.lab.nodeIp(1)]);
    const tunAddr = formatIp(parseCidr(c.nodes.get(1)!.subnet!).base);
    // Without NAT node 2 would drop it: the inner source is outside node 1's subnet.
    expect(await seenBy(pod(2), outsideNs, podIp(2))).toBe(tunAddr);
    expect(await seenBy(pod(1), outsideNs, podIp(1))).toBe(outsideIp);
  });

  it("drops a pod's forged encapsulated datagrams before they leave its node, masquerade or not", async () => {
    // The forgery: a pod on node 1 sends node 2's weftd a valid VXLAN-GPE datagram whose inner
    // packet claims another address of node 1's subnet; masquerade gives it node 1's outer source.
    const forgedSrc = formatIp(parseCidr(c.nodes.get(1)!.subnet!).base + 77);
    const before = (await c.counters(2)).outside_packets!;
    const sent = await c.lab.exec(pod(1), [process.execPath, '--import', 'tsx', join(FIXTURES, 'udp_spray.ts'), c.lab.nodeIp(2), '4790', 'spoofed', '50', forgedSrc, podIp(2)], { timeoutMs: 30_000 });
    expect(Number(sent.stdout)).toBe(50);
    expect((await c.counters(2)).outside_packets! - before).toBe(0);
    const dropped = (await c.lab.exec(nodeNs(1), ['nft', 'list', 'table', 'ip', 'weft_encap'])).stdout;
    expect(dropped).toMatch(/ip saddr 198\.19\.0\.0\/16 udp dport 4790 counter packets (\d+) .*drop/);
    expect(Number(/chain forward[\s\S]*?counter packets (\d+)/.exec(dropped)![1])).toBeGreaterThanOrEqual(50);
    // Pod to pod traffic is untouched.
    expect(await seenBy(pod(2), pod(1), podIp(2))).toBe(podIp(1));
  });

  it('replaces the rules on restart instead of adding to them', async () => {
    await c.stopNode(1, 'SIGKILL');
    expect(await nftRules(1)).toHaveLength(4); // left behind by the killed weftd
    await c.startNode(1);
    expect(await nftRules(1)).toHaveLength(4);
    expect((await nftTables(1)).filter((t) => t === 'table ip weft')).toHaveLength(1);
    // And once more after a clean stop and start.
    expect(await c.stopNode(1, 'SIGTERM')).toEqual({ code: 0, signal: null });
    await c.startNode(1);
    expect(await nftRules(1)).toHaveLength(4);
    expect(await seenBy(outsideNs, pod(1), outsideIp)).toBe(c.lab.nodeIp(1));
  });

  it('removes the table on SIGTERM', async () => {
    const weftd = c.nodes.get(1)!.weftd!;
    expect(await c.stopNode(1, 'SIGTERM')).toEqual({ code: 0, signal: null });
    expect(await nftRules(1)).toEqual([]);
    expect(await nftTables(1)).not.toContain('table ip weft');
    expect(weftd.log()).not.toMatch(/teardown_failed/);
    // Node 2 keeps its own.
    expect(await nftRules(2)).toHaveLength(4);
  });

  it('falls back to an iptables chain where nft is missing, idempotent and removed on SIGTERM', async () => {
    const bin = await pathWithout(join(c.lab.dir, 'bin-no-nft'), ['nft']);
    const start = async (): Promise<LabProcess> => {
      const p = (await c.startNode(1, 0, [], { PATH: bin })).weftd!;
      expect(p.log()).toMatch(/"event":"ip_masq","backend":"iptables"/);
      return p;
    };
    const subnet = c.nodes.get(1)!.subnet!;
    const expected = [
      `-N ${IPT_CHAIN}`,
      `-A ${IPT_CHAIN} -s 198.19.0.0/16 -d 198.19.0.0/16 -m comment --comment "weft: pod to pod, no NAT" -j RETURN`,
      `-A ${IPT_CHAIN} -s 198.19.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "weft: pod to outside" -j MASQUERADE --random-fully`,
      `-A ${IPT_CHAIN} ! -s 198.19.0.0/16 -d ${subnet} -m comment --comment "weft: outside to a local pod, no NAT" -j RETURN`,
      `-A ${IPT_CHAIN} ! -s 198.19.0.0/16 -d 198.19.0.0/16 -m comment --comment "weft: outside to a remote pod" -j MASQUERADE --random-fully`,
    ];
    const jumps = async (): Promise<string[]> => (await iptables(1, 'POSTROUTING')).filter((l) => l.includes(`-j ${IPT_CHAIN}`));

    let weftd = await start();
    expect(await iptables(1, IPT_CHAIN)).toEqual(expected);
    expect(await jumps()).toEqual([`-A POSTROUTING -m comment --comment "weft: ip-masq" -j ${IPT_CHAIN}`]);
    expect(await nftRules(1)).toEqual([]);
    expect(await seenBy(outsideNs, pod(1), outsideIp)).toBe(c.lab.nodeIp(1));
    expect(await seenBy(pod(2), pod(1), podIp(2))).toBe(podIp(1));

    // weftctl check asks iptables (-C) for each rule and jump weftd put in place: all there, then a rule and the jump gone.
    const check = async (): Promise<Record<string, { verdict: string; summary: string }>> => {
      const r = await c.lab.exec(nodeNs(1), [process.execPath, WEFTCTL, 'check', '--json', '--probe=false'], { allowFail: true, env: { PATH: bin } });
      return Object.fromEntries((JSON.parse(r.stdout) as { checks: { name: string; verdict: string; summary: string }[] }).checks.map((k) => [k.name, k]));
    };
    const healthy = await check();
    expect(healthy.masquerade).toMatchObject({ verdict: 'ok', summary: `in place: masquerading of pod traffic leaving the cluster network (iptables, chain ${IPT_CHAIN})` });
    expect(healthy['encap-filter']).toMatchObject({ verdict: 'ok', summary: expect.stringMatching(/\(iptables, chain WEFT-ENCAP\)$/) });
    await c.lab.exec(nodeNs(1), ['iptables', '-w', '5', '-t', 'nat', '-D', IPT_CHAIN, '2']);
    await c.lab.exec(nodeNs(1), ['iptables', '-w', '5', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'weft: ip-masq', '-j', IPT_CHAIN]);
    expect((await check()).masquerade).toMatchObject({
      verdict: 'fail',
      summary: `chain ${IPT_CHAIN} lacks ${expected[2]}, -A POSTROUTING -m comment --comment "weft: ip-masq" -j ${IPT_CHAIN}`,
    });

    // Killed and started again: one chain, one jump.
    expect((await stop(weftd, 'SIGKILL')).signal).toBe('SIGKILL');
    weftd = await start();
    expect(await iptables(1, IPT_CHAIN)).toEqual(expected);
    expect(await jumps()).toHaveLength(1);

    expect(await stop(weftd, 'SIGTERM')).toEqual({ code: 0, signal: null });
    expect(weftd.log()).not.toMatch(/teardown_failed/);
    expect(await iptables(1, IPT_CHAIN)).toEqual([]);
    expect(await jumps()).toEqual([]);
  });
});
