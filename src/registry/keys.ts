// etcd key layout: pure conversions between subnets and keys under a prefix.
//
//   <prefix>/network/config
//   <prefix>/network/subnets/10.244.1.0-24

import { type Cidr, formatIp, parseCidr } from '../net/ipv4.js';

export function configKey(prefix: string): string {
  return `${prefix}/network/config`;
}

export function subnetsPrefix(prefix: string): string {
  return `${prefix}/network/subnets/`;
}

export function subnetKey(prefix: string, subnet: Cidr): string {
  return `${subnetsPrefix(prefix)}${formatIp(subnet.base)}-${subnet.len}`;
}

/** The subnet a key names, or undefined when the key is not a subnet key under `prefix`. */
export function parseSubnetKey(prefix: string, key: string): Cidr | undefined {
  const head = subnetsPrefix(prefix);
  if (!key.startsWith(head)) return undefined;
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})$/.exec(key.slice(head.length));
  if (!m) return undefined;
  try {
    return parseCidr(`${m[1]}/${m[2]}`);
  } catch {
    return undefined;
  }
}

/** Normalizes a user-given prefix: leading slash, no trailing slash. */
export function normalizePrefix(prefix: string): string {
  const p = `/${prefix.replace(/^\/+|\/+$/g, '')}`;
  return p === '/' ? '' : p;
}
