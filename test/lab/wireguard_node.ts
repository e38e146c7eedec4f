// Lab nodes joined by wireguard-go (Debian's `wireguard-go`, configured with
// `wg` from `wireguard-tools`) instead of weftd: the benchmark's
// `wireguard-go` row, the userspace WireGuard users pick instead of weft. One
// wireguard-go per node namespace, in the foreground (-f) as a lab process,
// its TUN addressed as weftd addresses its own, every other node a peer with
// its underlay endpoint and its pod /24 as AllowedIPs:
//
//   pod eth0 -> cni0 <subnet>.1/24 -> <dev> <subnet>.0/16 (TUN) ->
//   wireguard-go -> UDP 51820 on eth0 -> the peer whose AllowedIPs hold <dst>
//
// WireGuard always encrypts (ChaCha20-Poly1305); its overhead is IPv4 20 +
// UDP 8 + data header 16 + tag 16 = 60 bytes, so the pods and the TUN get MTU
// 1440. wireguard-go keeps its control socket in /var/run/wireguard/<dev>.sock
// (a path shared by every namespace), so each device is named after the lab
// (`<prefix>w<i>`, at most 15 characters) and a teardown hook stops the
// process by PID and removes a socket it left.

import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { until } from '../harness/until.js';
import type { Lab, LabProcess } from './lab.js';
import { UNDERLAY_MTU } from './lab.js';
import { addressLikeWeftTun, parseSubnet, planSubnet, waitPodsReach, type TunnelNode } from './overlay_node.js';

export const WG_PORT = 51820;
/** IPv4 + UDP + WireGuard data header + Poly1305 tag. */
export const WG_OVERHEAD = 20 + 8 + 16 + 16;
export const WG_POD_MTU = UNDERLAY_MTU - WG_OVERHEAD;
export const WG_SOCKET_DIR = '/var/run/wireguard';
const SOCKET_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3000;

/** The commands the wireguard-go nodes need, for missingCommand(). */
export const WG_COMMANDS = [
  { command: 'wireguard-go', pkg: 'wireguard-go' },
  { command: 'wg', pkg: 'wireguard-tools' },
];

/** A peer as `wg set` takes it. */
export interface WgGoPeer {
  readonly publicKey: string;
  /** host:port */
  readonly endpoint: string;
  /** comma-separated prefixes */
  readonly allowedIps: string;
}

/**
 * Starts wireguard-go as a lab process in `ns` with device `dev` (at most 15
 * characters, unique to the run: the control socket's path is shared by
 * every namespace), configured with `wg set`: private key, listen port and
 * peers. A teardown hook stops it by PID and removes its socket.
 */
export async function startWireguardGo(lab: Lab, ns: string, dev: string, o: { privateKey: string; port: number; peers: readonly WgGoPeer[] }): Promise<LabProcess> {
  if (dev.length > 15) throw new Error(`wireguard-go: device name ${dev} is longer than 15 characters`);
  const socket = join(WG_SOCKET_DIR, `${dev}.sock`);
  const keyFile = join(lab.dir, `${dev}.key`);
  await writeFile(keyFile, `${o.privateKey}\n`, { mode: 0o600 });
  // -f and WG_PROCESS_FOREGROUND=1: no daemon, so the PID is the tunnel's.
  const proc = lab.spawn(ns, ['wireguard-go', '-f', dev], { env: { WG_PROCESS_FOREGROUND: '1' } });
  let exited = false;
  void proc.exited.then(() => (exited = true));
  lab.addTeardown({
    destroy: async () => {
      try {
        await proc.stop('SIGTERM', STOP_GRACE_MS);
      } finally {
        rmSync(socket, { force: true });
      }
    },
    destroySync: () => {
      proc.kill('SIGKILL');
      rmSync(socket, { force: true });
    },
  });
  await until(
    () => `wireguard-go in ${ns} to bring up ${dev}; log:\n${proc.log()}`,
    async () => {
      if (exited) throw new Error(`wireguard-go in ${ns} exited before it brought up ${dev}; log:\n${proc.log()}`);
      return (await lab.exec(ns, ['wg', 'show', dev], { allowFail: true })).code === 0;
    },
    SOCKET_TIMEOUT_MS,
  );
  const peers = o.peers.flatMap((p) => ['peer', p.publicKey, 'endpoint', p.endpoint, 'allowed-ips', p.allowedIps]);
  await lab.exec(ns, ['wg', 'set', dev, 'listen-port', String(o.port), 'private-key', keyFile, ...peers]);
  return proc;
}

/** A fresh key pair from `wg genkey` and `wg pubkey`, run in `ns`. */
export async function wgKeyPair(lab: Lab, ns: string): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await lab.exec(ns, ['wg', 'genkey'])).stdout.trim();
  return { privateKey, publicKey: await wgPublicKey(lab, ns, privateKey) };
}

/** The public key of `privateKey` (base64, as a key file holds it, newline or not) by `wg pubkey`, run in `ns`. */
export async function wgPublicKey(lab: Lab, ns: string, privateKey: string): Promise<string> {
  return (await lab.exec(ns, ['sh', '-c', 'printf "%s" "$WG_KEY" | wg pubkey'], { env: { WG_KEY: privateKey } })).stdout.trim();
}

/** When device `dev` in `ns` last completed a handshake with its (first) peer, in Unix seconds: 0 for never. */
export async function latestHandshake(lab: Lab, ns: string, dev: string): Promise<number> {
  return Number((await lab.exec(ns, ['wg', 'show', dev, 'latest-handshakes'])).stdout.trim().split(/\s+/)[1] ?? 0);
}

/**
 * Runs wireguard-go on every node of the lab (1..lab.nodeCount), node i with
 * pod subnet planSubnet(i) and `podsPerNode` pods at MTU WG_POD_MTU; resolves
 * once every node's first pod pings every other node's.
 */
export async function startWireguardNodes(lab: Lab, podsPerNode: number): Promise<TunnelNode[]> {
  const indexes = Array.from({ length: lab.nodeCount }, (_, k) => k + 1);
  const dev = (i: number): string => `${lab.prefix}w${i}`;
  const keys = new Map<number, { privateKey: string; publicKey: string }>();
  for (const i of indexes) keys.set(i, await wgKeyPair(lab, lab.nodeNs(i)));

  const nodes: TunnelNode[] = [];
  for (const i of indexes) {
    const ns = lab.nodeNs(i);
    const peers = indexes.filter((j) => j !== i).map((j) => ({ publicKey: keys.get(j)!.publicKey, endpoint: `${lab.nodeIp(j)}:${WG_PORT}`, allowedIps: planSubnet(j) }));
    const proc = await startWireguardGo(lab, ns, dev(i), { privateKey: keys.get(i)!.privateKey, port: WG_PORT, peers });
    const subnet = planSubnet(i);
    await addressLikeWeftTun(ns, dev(i), subnet, WG_POD_MTU);
    const pods = podsPerNode > 0 ? await lab.addPods(i, podsPerNode, parseSubnet(subnet), WG_POD_MTU) : [];
    nodes.push({ index: i, ns, ip: lab.nodeIp(i), subnet, dev: dev(i), pods, process: proc });
  }
  await waitPodsReach(lab, nodes);
  return nodes;
}
