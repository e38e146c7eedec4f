// Subnet allocation choice, pure: which subnet a node should try to lease.

import { type Cidr, contains, subnetAt, subnetCount, subnetIndexOf } from '../net/ipv4.js';

/**
 * Picks a subnet for a node: `preferred` if it is a free subnet of the
 * network, else a random free one. A subnet is free when no taken prefix
 * overlaps it, whatever their lengths (after `weftctl init --subnet-len 25
 * --force`, a live /24 still covers two /25s). Subnet 0 is never handed
 * out: its network address would be the network's own address on the
 * node's TUN. Returns undefined when the network is full.
 */
export function chooseSubnet(network: Cidr, subnetLen: number, taken: readonly Cidr[], preferred: Cidr | undefined, random: () => number): Cidr | undefined {
  const total = subnetCount(network, subnetLen);
  const used = new Uint8Array(total);
  used[0] = 1;
  const last = network.base + 2 ** (32 - network.len) - 1;
  for (const t of taken) {
    const lo = Math.max(t.base, network.base);
    const hi = Math.min(t.base + 2 ** (32 - t.len) - 1, last);
    if (lo <= hi) used.fill(1, subnetIndexOf(network, subnetLen, lo), subnetIndexOf(network, subnetLen, hi) + 1);
  }
  if (preferred && preferred.len === subnetLen && contains(network, preferred.base) && !used[subnetIndexOf(network, subnetLen, preferred.base)]) {
    return preferred;
  }
  const free: number[] = [];
  for (let i = 1; i < total; i++) if (!used[i]) free.push(i);
  if (free.length === 0) return undefined;
  return subnetAt(network, subnetLen, free[Math.floor(random() * free.length)]!);
}
