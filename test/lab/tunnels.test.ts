// The lab's other tunnels, which the benchmark compares weft with: tinc 1.0
// and wireguard-go between two node namespaces, pod to pod through each, and
// nothing of them left after the lab is destroyed.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from './lab.js';
import { listNamespaces, pidAlive } from './netns.js';
import { missingCommand, type TunnelNode } from './overlay_node.js';
import { TINC_DEV, TINC_POD_MTU, startTincNodes } from './tinc_node.js';
import { WG_POD_MTU, WG_SOCKET_DIR, startWireguardNodes } from './wireguard_node.js';

const isRoot = process.getuid?.() === 0;

/** The tunnel device's packet counters in node `ns`. */
async function devCounters(lab: Lab, ns: string, dev: string): Promise<{ rx: number; tx: number }> {
  const r = await lab.exec(ns, ['cat', `/sys/class/net/${dev}/statistics/rx_packets`, `/sys/class/net/${dev}/statistics/tx_packets`]);
  const [rx, tx] = r.stdout.trim().split('\n').map(Number);
  return { rx: rx!, tx: tx! };
}

/** UDP datagrams the namespace's kernel delivered to sockets (its /proc/net/snmp). */
async function udpInDatagrams(lab: Lab, ns: string): Promise<number> {
  const lines = (await lab.exec(ns, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp: '));
  const [names, values] = lines.map((l) => l.split(/\s+/)) as [string[], string[]];
  return Number(values[names.indexOf('InDatagrams')]);
}

/** Pings pod to pod both ways with full-size packets (DF), and checks both devices carried them, in UDP. */
async function checkPodToPod(lab: Lab, nodes: TunnelNode[], mtu: number): Promise<void> {
  const [a, b] = nodes as [TunnelNode, TunnelNode];
  const before = await devCounters(lab, a.ns, a.dev);
  const udpBefore = await udpInDatagrams(lab, b.ns);
  for (const [from, to] of [[a, b], [b, a]] as const) {
    const r = await lab.exec(from.pods[0]!, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', '-w', '5', '-M', 'do', '-s', String(mtu - 28), lab.podIp(to.pods[0]!)], {
      timeoutMs: 8000,
      allowFail: true,
    });
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
  }
  const after = await devCounters(lab, a.ns, a.dev);
  expect(after.tx - before.tx).toBeGreaterThanOrEqual(6);
  expect(after.rx - before.rx).toBeGreaterThanOrEqual(6);
  // Three requests and three replies arrived at b in UDP datagrams, not in a TCP stream.
  expect((await udpInDatagrams(lab, b.ns)) - udpBefore).toBeGreaterThanOrEqual(6);
  const route = await lab.exec(a.ns, ['ip', '-4', 'route', 'get', lab.podIp(b.pods[0]!)]);
  expect(route.stdout).toContain(`dev ${a.dev}`);
  // One byte more than the tunnel's MTU does not pass.
  const big = await lab.exec(a.pods[0]!, ['ping', '-n', '-q', '-c', '1', '-W', '1', '-M', 'do', '-s', String(mtu - 27), lab.podIp(b.pods[0]!)], { allowFail: true });
  expect(big.code).not.toBe(0);
}

async function checkGone(lab: Lab, nodes: TunnelNode[]): Promise<void> {
  await lab.destroy();
  expect((await listNamespaces()).filter((n) => n.startsWith(`${lab.prefix}-`))).toEqual([]);
  for (const n of nodes) expect(pidAlive(n.process.pid)).toBe(false);
}

describe('the check that a tunnel is installed', () => {
  it('names the first command missing from PATH and its package, and nothing when all are there', () => {
    expect(missingCommand([{ command: 'sh', pkg: 'dash' }, { command: 'weft-no-such-command', pkg: 'weft-no-such-package' }])).toBe(
      'weft-no-such-command is not installed (Debian package weft-no-such-package; bash test/setup.sh installs it)',
    );
    expect(missingCommand([{ command: 'sh', pkg: 'dash' }])).toBeUndefined();
  });
});

describe.skipIf(!isRoot)('tinc 1.0 between two lab nodes (needs root and Debian tinc)', () => {
  let lab: Lab | undefined;
  let nodes: TunnelNode[] = [];

  beforeAll(async () => {
    lab = await Lab.create({ nodes: 2, name: 'tunnels.test tinc' });
    nodes = await startTincNodes(lab, 1);
  }, 30_000);

  afterAll(async () => {
    await lab?.destroy();
  }, 30_000);

  it('carries pod traffic in UDP, unencrypted and unauthenticated, at MTU 1454', async () => {
    const l = lab!;
    expect(nodes.map((n) => [n.subnet, n.dev])).toEqual([
      ['198.19.1.0/24', TINC_DEV],
      ['198.19.2.0/24', TINC_DEV],
    ]);
    expect(TINC_POD_MTU).toBe(1454);
    await checkPodToPod(l, nodes, TINC_POD_MTU);
    // SIGUSR2: tincd dumps its nodes, with the cipher and digest it uses
    // toward each (0: none) and the path MTU.
    const n1 = nodes[0]!;
    n1.process.kill('SIGUSR2');
    const line = await n1.process.waitForLog(/^ node2 at /, 5000);
    expect(line).toMatch(/cipher 0 digest 0 maclength \d+ compression 0 /);
    expect(line).toMatch(/pmtu 1468 /);
  }, 30_000);

  it('is gone with the lab', async () => {
    await checkGone(lab!, nodes);
  }, 30_000);
});

describe.skipIf(!isRoot)('wireguard-go between two lab nodes (needs root, Debian wireguard-go and wireguard-tools)', () => {
  let lab: Lab | undefined;
  let nodes: TunnelNode[] = [];

  beforeAll(async () => {
    lab = await Lab.create({ nodes: 2, name: 'tunnels.test wireguard-go' });
    nodes = await startWireguardNodes(lab, 1);
  }, 30_000);

  afterAll(async () => {
    await lab?.destroy();
  }, 30_000);

  it('carries pod traffic between peers that completed a handshake, at MTU 1440', async () => {
    const l = lab!;
    expect(nodes.map((n) => n.subnet)).toEqual(['198.19.1.0/24', '198.19.2.0/24']);
    expect(WG_POD_MTU).toBe(1440);
    await checkPodToPod(l, nodes, WG_POD_MTU);
    const show = await l.exec(nodes[0]!.ns, ['wg', 'show', nodes[0]!.dev, 'dump']);
    const peer = show.stdout.trim().split('\n')[1]!.split('\t');
    // public key, psk, endpoint, allowed ips, latest handshake, rx, tx, keepalive
    expect(peer[2]).toBe('198.18.0.2:51820');
    expect(peer[3]).toBe('198.19.2.0/24');
    expect(Number(peer[4])).toBeGreaterThan(0);
    expect(Number(peer[5])).toBeGreaterThan(0);
  }, 30_000);

  it('is gone with the lab, control sockets too', async () => {
    await checkGone(lab!, nodes);
    for (const n of nodes) expect(existsSync(join(WG_SOCKET_DIR, `${n.dev}.sock`))).toBe(false);
  }, 30_000);
});
