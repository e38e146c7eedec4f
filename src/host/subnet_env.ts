// /run/weft/subnet.env: the lease as flannel's CNI plugin reads it, written
// atomically (host/atomic_write.ts) so a reader never sees half a file, and
// parsed back by weft's own CNI plugin. While the node holds no subnet (it
// lost its own, or waits for a free one) the file says so instead, and
// carries no FLANNEL_SUBNET, so no reader can hand out an address from it.

import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from './atomic_write.js';
import { dirname } from 'node:path';
import { WeftError, errorMessage } from '../errors.js';
import { type Cidr, formatCidr, formatIp, maskOf, parseCidr } from '../net/ipv4.js';

export interface SubnetEnv {
  readonly network: Cidr;
  readonly subnet: Cidr;
  readonly mtu: number;
  readonly ipMasq: boolean;
  /**
   * When the node's lease on the subnet expires at the earliest, unless
   * weftd renews it (and rewrites this); ms since the epoch. Past it another
   * node may hold the subnet, so the CNI plugin hands out no address from
   * it: a weftd stopped or frozen past its TTL cannot say so itself.
   */
  readonly leaseExpiresMs?: number;
}

/** The pods' gateway on the bridge: the subnet's first usable address, which FLANNEL_SUBNET names. */
export function gatewayOf(subnet: Cidr): number {
  return subnet.base + 1;
}

/** The gateway with the subnet's length, `198.19.1.1/24`: FLANNEL_SUBNET's value, and the bridge's address. */
export function gatewayCidr(subnet: Cidr): string {
  return `${formatIp(gatewayOf(subnet))}/${subnet.len}`;
}

/** flannel's format: FLANNEL_SUBNET is the gateway with the subnet's length. */
export function formatSubnetEnv(e: SubnetEnv): string {
  return [
    `FLANNEL_NETWORK=${formatCidr(e.network)}`,
    `FLANNEL_SUBNET=${gatewayCidr(e.subnet)}`,
    `FLANNEL_MTU=${e.mtu}`,
    `FLANNEL_IPMASQ=${e.ipMasq}`,
    ...(e.leaseExpiresMs !== undefined ? [`WEFT_LEASE_EXPIRES=${new Date(e.leaseExpiresMs).toISOString()}`] : []),
    '',
  ].join('\n');
}

/** The node holds no subnet: why, and the one it lost, if it lost one. */
export interface NoSubnet {
  readonly network: Cidr;
  /** One line, for the CNI plugin's errors and the operator. */
  readonly reason: string;
  readonly lost?: Cidr;
}

/** What the file says: the subnet held, or that there is none. */
export type SubnetFile = { readonly held: SubnetEnv; readonly none?: undefined } | { readonly held?: undefined; readonly none: NoSubnet };

/** The marker of a node without a subnet: FLANNEL_NETWORK, no FLANNEL_SUBNET, and weft's own keys saying why. */
export function formatNoSubnet(n: NoSubnet): string {
  return [
    '# This node holds no pod subnet: no pod may get an address until weftd writes FLANNEL_SUBNET here again.',
    `FLANNEL_NETWORK=${formatCidr(n.network)}`,
    `WEFT_NO_SUBNET=${n.reason.replace(/[\r\n]+/g, ' ')}`,
    ...(n.lost ? [`WEFT_LOST_SUBNET=${formatCidr(n.lost)}`] : []),
    '',
  ].join('\n');
}

/** Replaces the file atomically and synchronously: callers rely on it being done when this returns. WEFT_HOST_SETUP naming the path on failure. */
function replaceFile(path: string, text: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, text, 0o644);
  } catch (err) {
    throw new WeftError('WEFT_HOST_SETUP', `cannot write the subnet file ${path}: ${errorMessage(err)}`, { path });
  }
}

export function writeSubnetEnv(path: string, e: SubnetEnv): void {
  replaceFile(path, formatSubnetEnv(e));
}

export function writeNoSubnet(path: string, n: NoSubnet): void {
  replaceFile(path, formatNoSubnet(n));
}

/**
 * Parses the file's text (`path` only names it in errors): the subnet held
 * (every flannel key present and well formed, the subnet inside the
 * network), or the marker of a node without one. Anything else is a
 * WEFT_VALUE_INVALID naming the file and the key. Unknown keys are ignored
 * (flannel's readers do the same).
 */
export function parseSubnetFile(text: string, path: string): SubnetFile {
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
  const reason = vars.get('WEFT_NO_SUBNET');
  if (reason !== undefined) {
    if (vars.has('FLANNEL_SUBNET')) throw bad('WEFT_NO_SUBNET', 'and FLANNEL_SUBNET are both set');
    return { none: { network, reason, ...(vars.has('WEFT_LOST_SUBNET') ? { lost: cidr('WEFT_LOST_SUBNET', false) } : {}) } };
  }
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
  const expires = vars.get('WEFT_LEASE_EXPIRES');
  const leaseExpiresMs = expires === undefined ? undefined : Date.parse(expires);
  if (leaseExpiresMs !== undefined && !Number.isFinite(leaseExpiresMs)) throw bad('WEFT_LEASE_EXPIRES', `is not an ISO 8601 time, got "${expires}"`);
  return { held: { network, subnet, mtu, ipMasq: masq === 'true', ...(leaseExpiresMs !== undefined ? { leaseExpiresMs } : {}) } };
}

/** The subnet the file names; a marker of no subnet is a WEFT_VALUE_INVALID saying why there is none. */
export function parseSubnetEnv(text: string, path: string): SubnetEnv {
  const f = parseSubnetFile(text, path);
  if (f.none) throw new WeftError('WEFT_VALUE_INVALID', `${path}: this node holds no subnet: ${f.none.reason}`, { path, key: 'WEFT_NO_SUBNET' });
  return f.held;
}
