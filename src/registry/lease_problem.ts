// Why a lease is left out of a node's route table: one pure classification,
// shared by the lease watcher (which counts each reason on /metrics) and
// `weftctl leases` (which shows it on the lease's row).

import { type Cidr, contains, formatCidr, parseIp } from '../net/ipv4.js';
import type { LeaseRecord } from './registry.js';
import type { NetworkConfig } from './schema.js';

/**
 * Every reason, in the order they are tested; `invalid` is a value that does
 * not parse; `shared_key`, a WireGuard key another node published first, is
 * the lease watcher's to find (it needs the other leases).
 */
export const IGNORED_REASONS = ['invalid', 'outside_network', 'subnet_length', 'public_ip_in_network', 'own_address', 'own_key', 'shared_key'] as const;
export type IgnoredReason = (typeof IGNORED_REASONS)[number];

export interface LeaseProblem {
  readonly reason: IgnoredReason;
  /** One line naming the lease's fault. */
  readonly message: string;
}

/**
 * What keeps a parsed lease out of the table, or undefined when it is
 * usable: a subnet outside the cluster network or of another length (left
 * by `weftctl init --force`, or written by hand), a public IP inside the
 * cluster network (packets to it would re-enter the TUN and loop), or, seen
 * from a node, that node's own address or its own WireGuard key (`ownKey`,
 * base64). The schema already refused addresses no node can have.
 */
export function leaseProblem(r: LeaseRecord, config: NetworkConfig, ownPublicIp?: number, ownKey?: string): LeaseProblem | undefined {
  const s: Cidr = r.subnet;
  const who = `node ${r.lease.nodeName}`;
  if (!contains(config.network, s.base) || s.len < config.network.len) {
    return { reason: 'outside_network', message: `subnet ${formatCidr(s)} of ${who} is outside the cluster network ${formatCidr(config.network)}` };
  }
  if (s.len !== config.subnetLen) {
    return { reason: 'subnet_length', message: `subnet ${formatCidr(s)} of ${who} is not a /${config.subnetLen}, the network's subnet length` };
  }
  const ip = parseIp(r.lease.publicIp);
  if (contains(config.network, ip)) {
    return { reason: 'public_ip_in_network', message: `publicIp ${r.lease.publicIp} of ${who} is inside the cluster network ${formatCidr(config.network)}: packets to it would loop through the TUN` };
  }
  if (ownPublicIp !== undefined && ip === ownPublicIp) {
    return { reason: 'own_address', message: `${who} names this node's own address ${r.lease.publicIp} as its publicIp` };
  }
  if (ownKey && r.lease.wireguardPublicKey === ownKey) {
    return { reason: 'own_key', message: `${who} publishes this node's own WireGuard key` };
  }
  return undefined;
}
