// /run/weft/subnet.env: the lease as flannel's CNI plugin reads it, written
// atomically (host/atomic_write.ts) so a reader never sees half a file, and
// parsed back by weft's own CNI plugin.

import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from './atomic_write.js';
import { dirname } from 'node:path';
import { WeftError } from '../errors.js';
import { type Cidr, formatCidr, formatIp, maskOf, parseCidr } from '../net/ipv4.js';

export interface SubnetEnv {
  readonly network: Cidr;
  readonly subnet: Cidr;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

/** flannel's format: FLANNEL_SUBNET is the subnet's first usable address with the subnet's length. */
export function formatSubnetEnv(e: SubnetEnv): string {
  return [
    `FLANNEL_NETWORK=${formatCidr(e.network)}`,
    `FLANNEL_SUBNET=${formatIp(e.subnet.base + 1)}/${e.subnet.len}`,
    `FLANNEL_MTU=${e.mtu}`,
    `FLANNEL_IPMASQ=${e.ipMasq}`,
    '',
  ].join('\n');
}

export async function writeSubnetEnv(path: string, e: SubnetEnv): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  writeFileAtomic(path, formatSubnetEnv(e), 0o644);
}

/**
 * Parses the file's text (`path` only names it in errors). Every key must be
 * present and well formed and the subnet must lie in the network; anything
 * else is a WEFT_VALUE_INVALID naming the file and the key. Unknown keys are
 * ignored (flannel's readers do the same).
 */
export function parseSubnetEnv(text: string, path: string): SubnetEnv {
  const bad = (key: string, why: string): WeftError => new WeftError('WEFT_VALUE_INVALID', `${path}: ${key} ${why}`, { path, key });
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) throw bad(JSON.stringify(t.slice(0, 40)), 'is not a KEY=VALUE line');
    vars.set(t.slice(0, eq), t.slice(eq + 1));
  }
  const get = (key: string): string => {
    const v = vars.get(key);
    if (v === undefined) throw bad(key, 'is missing');
    return v;
  };
  const cidr = (key: string, allowHostBits: boolean): Cidr => {
    try {
      return parseCidr(get(key), allowHostBits);
    } catch (err) {
      if (err instanceof WeftError && err.code === 'WEFT_BAD_CIDR') throw bad(key, `is not an IPv4 prefix: "${vars.get(key)}"`);
      throw err;
    }
  };
  const network = cidr('FLANNEL_NETWORK', false);
  const subnet = cidr('FLANNEL_SUBNET', true);
  if (subnet.len > 30) throw bad('FLANNEL_SUBNET', `/${subnet.len} leaves no address for pods (at most /30)`);
  if (subnet.len < network.len || ((subnet.base & maskOf(network.len)) >>> 0) !== network.base) {
    throw bad('FLANNEL_SUBNET', `${formatCidr(subnet)} is not a subnet of FLANNEL_NETWORK ${formatCidr(network)}`);
  }
  const mtuText = get('FLANNEL_MTU');
  const mtu = /^\d{1,5}$/.test(mtuText) ? Number(mtuText) : NaN;
  if (!(mtu >= 576 && mtu <= 65535)) throw bad('FLANNEL_MTU', `must be an integer in 576..65535, got "${mtuText}"`);
  const masq = get('FLANNEL_IPMASQ');
  if (masq !== 'true' && masq !== 'false') throw bad('FLANNEL_IPMASQ', `must be true or false, got "${masq}"`);
  return { network, subnet, mtu, ipMasq: masq === 'true' };
}
