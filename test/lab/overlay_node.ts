// What the lab's overlay nodes that weftd does not run share (kernel_node.ts,
// tinc_node.ts, wireguard_node.ts): the pod subnet plan, the tunnel device
// addressed as weftd addresses its TUN, the wait until pods reach each other
// through it, and the check that a tunnel's programs are installed.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { POD_NETWORK } from './cluster.js';
import { isNetworkAddress } from './ipv4.js';
import type { Lab, LabProcess, PodSubnet } from './lab.js';
import { ipIn } from './netns.js';

/** A node of a tunnel other than weft: its device, its pods and the process that runs the tunnel. */
export interface TunnelNode {
  readonly index: number;
  readonly ns: string;
  /** Underlay address, 198.18.0.<index>. */
  readonly ip: string;
  /** e.g. 198.19.1.0/24 */
  readonly subnet: string;
  readonly dev: string;
  readonly pods: string[];
  readonly process: LabProcess;
}

/** Node i's pod subnet when the lab, not weftd, hands them out: 198.19.<i>.0/24. */
export function planSubnet(i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > 255) throw new Error(`planSubnet: no /24 of ${POD_NETWORK} for node ${i}`);
  return `198.19.${i}.0/24`;
}

/** `198.19.1.0/24` -> { network: '198.19.1.0', prefixLen: 24 }; throws unless it is a network address. */
export function parseSubnet(subnet: string): PodSubnet {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(subnet);
  if (!m || !isNetworkAddress(m[1]!, Number(m[2]))) throw new Error(`not a subnet like 198.19.1.0/24: ${subnet}`);
  return { network: m[1]!, prefixLen: Number(m[2]) };
}

/**
 * Brings `dev` up with `mtu` and gives it the subnet's network address with
 * the cluster prefix (198.19.1.0/16), as weftd does its TUN: the kernel then
 * routes the whole cluster network into the device, and the pods' own /24
 * stays on cni0 (more specific).
 */
export async function addressLikeWeftTun(ns: string, dev: string, subnet: string, mtu: number, clusterNetwork = POD_NETWORK): Promise<void> {
  const { network } = parseSubnet(subnet);
  await ipIn(ns, ['link', 'set', dev, 'mtu', String(mtu), 'up']);
  await ipIn(ns, ['addr', 'add', `${network}/${clusterNetwork.split('/')[1]}`, 'dev', dev]);
}

/**
 * Waits until the first pod of every node pings the first pod of every other
 * node (a tunnel may need a handshake first); throws after `timeoutMs`.
 */
export async function waitPodsReach(lab: Lab, nodes: readonly TunnelNode[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b || !a.pods[0] || !b.pods[0]) continue;
      const to = lab.podIp(b.pods[0]);
      while (!(await lab.ping(a.pods[0], to, { count: 1, timeoutS: 1 }))) {
        if (Date.now() > deadline) throw new Error(`pod ${lab.podIp(a.pods[0])} (node ${a.index}) cannot reach ${to} (node ${b.index}) through ${a.dev} after ${timeoutMs} ms`);
      }
    }
  }
}

/** The first of `commands` not on PATH, as a reason to skip (with the Debian package to install), or undefined when all are there. */
export function missingCommand(commands: readonly { command: string; pkg: string }[]): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const { command, pkg } of commands) {
    const found = dirs.some((d) => {
      try {
        accessSync(join(d, command), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    if (!found) return `${command} is not installed (Debian package ${pkg}; bash test/setup.sh installs it)`;
  }
  return undefined;
}
