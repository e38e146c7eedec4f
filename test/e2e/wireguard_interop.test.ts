// Interoperability with Debian's wireguard-go, a WireGuard no one here wrote:
// node 1 runs weftd in an encrypted cluster; node 2 runs wireguard-go,
// configured only with `wg` and `ip` from weftd's lease (its public key and
// port), and weft learns of it from a lease written by hand, as an operator
// would (docs/encryption.md). Handshakes initiated from each side, pings
// both ways, 20 MiB over TCP intact both ways.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { WeftCluster } from '../lab/cluster.js';
import { keyOfSubnet } from '../lab/kernel_node.js';
import { ipIn } from '../lab/netns.js';
import { missingCommand } from '../lab/overlay_node.js';
import { WG_COMMANDS, WG_POD_MTU, WG_PORT, latestHandshake as wgLatestHandshake, startWireguardGo, wgKeyPair } from '../lab/wireguard_node.js';

const PEER_SUBNET = '198.19.250.0/24';
const PEER_ADDR = '198.19.250.1';
const skip = rootSkipReason() || missingCommand(WG_COMMANDS);

const ENGINES: readonly string[] = ['native', 'js'];

for (const engine of ENGINES) {
  describe.skipIf(skip)(`weftd --engine ${engine} and wireguard-go${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let c: WeftCluster;
    let dev: string;
    let ns: string;
    let pod: string;
    let peerKey: { privateKey: string; publicKey: string };
    let weftKey: string;

    /** wireguard-go's peer entry for the weft node, as `wg set` takes it from the lease. */
    const weftPeer = (): { publicKey: string; endpoint: string; allowedIps: string } => ({ publicKey: weftKey, endpoint: `${c.lab.nodeIp(1)}:${WG_PORT}`, allowedIps: c.nodes.get(1)!.subnet! });

    beforeAll(async () => {
      c = await WeftCluster.create({ nodes: 2, podsPerNode: 0, name: `wg-interop-${engine}`, engine, startNodes: false, initFlags: ['--encryption', 'wireguard'] });
      await c.startNode(1, 1);
      pod = c.nodes.get(1)!.pods[0]!;
      ns = c.lab.nodeNs(2);
      dev = `${c.lab.prefix}g`;
      // The weft node's key and port, from its lease (etcdctl, as the recipe in docs/encryption.md reads them).
      const lease = (await c.lab.etcdctl(['get', '--print-value-only', keyOfSubnet(c.nodes.get(1)!.subnet!)])).trim();
      const parsed = JSON.parse(lease) as { wireguardPublicKey: string; wireguardPort: number };
      expect(parsed.wireguardPort).toBe(WG_PORT);
      weftKey = parsed.wireguardPublicKey;
      peerKey = await wgKeyPair(c.lab, ns);
      await startWireguardGo(c.lab, ns, dev, { privateKey: peerKey.privateKey, port: WG_PORT, peers: [weftPeer()] });
      await ipIn(ns, ['addr', 'add', `${PEER_ADDR}/24`, 'dev', dev]);
      await ipIn(ns, ['link', 'set', dev, 'mtu', String(WG_POD_MTU), 'up']);
      await ipIn(ns, ['route', 'add', c.nodes.get(1)!.subnet!, 'dev', dev]);
      // The lease an operator writes for the wireguard-go node.
      await c.lab.etcdctl(['put', keyOfSubnet(PEER_SUBNET), JSON.stringify({ nodeName: 'wgpeer', publicIp: c.lab.nodeIp(2), port: 4790, vni: 1, wireguardPublicKey: peerKey.publicKey, wireguardPort: WG_PORT })]);
      await until('weftd to route the wireguard-go node', async () => JSON.parse((await c.http(1, '/status')).body).peers.some((p: { node: string }) => p.node === 'wgpeer'), 10_000, 100);
    }, 90_000);
    afterAll(async () => {
      await c?.destroy();
    });

    const latestHandshake = (): Promise<number> => wgLatestHandshake(c.lab, ns, dev);
    const weftSession = async (): Promise<{ state: string; lastHandshakeAgoS: number | null }> =>
      (JSON.parse((await c.http(1, '/status')).body) as { encryption: { peers: { node: string; state: string; lastHandshakeAgoS: number | null }[] } }).encryption.peers.find((p) => p.node === 'wgpeer')!;

    it('wireguard-go initiates: weft answers, and pings cross both ways', async () => {
      expect(await latestHandshake()).toBe(0);
      expect(await c.lab.ping(ns, c.lab.podIp(pod), { count: 3, timeoutS: 10 })).toBe(true);
      expect(await latestHandshake()).toBeGreaterThan(0);
      expect(await c.lab.ping(pod, PEER_ADDR, { count: 3, timeoutS: 10 })).toBe(true);
      const counters = await c.counters(1);
      expect(counters.wg_handshakes_completed).toBeGreaterThan(0);
      expect(counters.wg_initiations_sent).toBe(0);
      expect((await weftSession()).state).toBe('up');
    });

    it('weft initiates: after a restart of weftd and a fresh wireguard-go peer, a ping from weft\'s pod starts the handshake', async () => {
      await c.stopNode(1);
      await c.lab.exec(ns, ['wg', 'set', dev, 'peer', weftKey, 'remove']);
      const p = weftPeer();
      await c.lab.exec(ns, ['wg', 'set', dev, 'peer', p.publicKey, 'endpoint', p.endpoint, 'allowed-ips', p.allowedIps]);
      await ipIn(ns, ['route', 'replace', c.nodes.get(1)!.subnet!, 'dev', dev]);
      await c.startNode(1);
      expect(await c.lab.ping(pod, PEER_ADDR, { count: 3, timeoutS: 10 })).toBe(true);
      expect((await c.counters(1)).wg_initiations_sent).toBeGreaterThan(0);
      expect(await latestHandshake()).toBeGreaterThan(0);
      expect(await c.lab.ping(ns, c.lab.podIp(pod), { count: 2, timeoutS: 5 })).toBe(true);
    }, 60_000);

    it('moves 20 MiB over TCP intact both ways', async () => {
      const toPeer = await c.transfer(pod, ns, 20 * 1024 * 1024, { toIp: PEER_ADDR, port: 5011 });
      expect(toPeer.sent).toMatch(/^20971520 [0-9a-f]{64}$/);
      expect(toPeer.received).toBe(toPeer.sent);
      const toWeft = await c.transfer(ns, pod, 20 * 1024 * 1024, { port: 5012 });
      expect(toWeft.sent).toMatch(/^20971520 [0-9a-f]{64}$/);
      expect(toWeft.received).toBe(toWeft.sent);
    }, 180_000);
  });
}
