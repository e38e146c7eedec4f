// Subnet allocation choice, pure: which subnet a node should try to lease.

import { type Cidr, contains, subnetAt, subnetCount, subnetIndexOf } from '../net/ipv4.js';

/**
 * Picks a subnet for a node: `preferred` if it is a free subnet of the
 * network, else a random free one. Subnet 0 is never handed out: its network
 * address would be the network's own address on the node's TUN. Returns
 * undefined when the network is full.
 */
export function chooseSubnet(
  network: Cidr,
  subnetLen: number,
  taken: ReadonlySet<number>,
  preferred: Cidr | undefined,
  random: () => number,
): Cidr | undefined {
  if (
    preferred &&
    preferred.len === subnetLen &&
    contains(network, preferred.base) &&
    subnetIndexOf(network, subnetLen, preferred.base) !== 0 &&
    !taken.has(preferred.base)
  ) {
    return preferred;
  }
  const total = subnetCount(network, subnetLen);
  const free: number[] = [];
  for (let i = 1; i < total; i++) {
    if (!taken.has(subnetAt(network, subnetLen, i).base)) free.push(i);
  }
  if (free.length === 0) return undefined;
  return subnetAt(network, subnetLen, free[Math.floor(random() * free.length)]!);
}
