// The node's subnet changed under running pods (its lease was lost and a new
// subnet taken): which attachments still use an earlier subnet. A pure
// function over what the plugin and host-local have on disk.

import { type Cidr, contains, formatCidr, maskOf, parseIp } from '../net/ipv4.js';
import type { Attachment } from './netconf.js';

export interface InUse extends Attachment {
  /** The pod's address, without prefix length. */
  readonly ip: string;
}

export interface StalePod extends InUse {
  /** The earlier subnet the address belongs to (same length as the current one). */
  readonly subnet: string;
}

/** Pods whose address is not in `current`; each named with the subnet it came from. Duplicates (state and reservation) collapse. */
export function stalePods(current: Cidr, inUse: readonly InUse[]): StalePod[] {
  const seen = new Set<string>();
  const out: StalePod[] = [];
  for (const u of inUse) {
    const ip = parseIp(u.ip);
    const key = `${u.containerId}:${u.ifname}:${u.ip}`;
    if (ip < 0 || contains(current, ip) || seen.has(key)) continue;
    seen.add(key);
    out.push({ ...u, subnet: formatCidr({ base: (ip & maskOf(current.len)) >>> 0, len: current.len }) });
  }
  return out;
}

/** The ADD failure message: both subnets, the pods in the way, and what to do. */
export function subnetChangedMessage(bridge: string, current: Cidr, stale: readonly StalePod[]): string {
  const old = [...new Set(stale.map((s) => s.subnet))].join(', ');
  const shown = stale.slice(0, 5).map((s) => `${s.containerId.slice(0, 12)}/${s.ifname} (${s.ip})`).join(', ');
  const more = stale.length > 5 ? ` and ${stale.length - 5} more` : '';
  return (
    `the node's subnet is now ${formatCidr(current)}, but ${stale.length} pod(s) on ${bridge} still use the earlier subnet ${old}: ${shown}${more}. ` +
    `Their addresses no longer route. Delete those pods (or drain the node); the next ADD then moves ${bridge} to ${formatCidr(current)} by itself.`
  );
}
