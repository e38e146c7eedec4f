// IPv4 addresses and prefixes as unsigned 32-bit integers: parsing, printing, prefix math.

import { WeftError } from '../errors.js';

/** An IPv4 prefix; `base` is the network address, always masked. */
export interface Cidr {
  readonly base: number;
  readonly len: number;
}

export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/**
 * Parses a dotted quad (four decimal parts 0-255, no leading zeros, nothing
 * else); returns -1 when it is not one. Scans characters and allocates
 * nothing: route tables are rebuilt from every lease's address.
 */
export function parseIp(text: string): number {
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || ++dots > 3) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && part === 0) return -1;
      part = part * 10 + (c - 0x30);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return (v * 256 + part) >>> 0;
}

export function formatIp(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Parses "a.b.c.d/len"; host bits must be zero unless `allowHostBits`. */
export function parseCidr(text: string, allowHostBits = false): Cidr {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text.trim());
  const ip = m ? parseIp(m[1]!) : -1;
  const len = m ? Number(m[2]) : -1;
  if (!m || ip < 0 || len > 32) {
    throw new WeftError('WEFT_BAD_CIDR', `"${text}" is not an IPv4 prefix like 10.244.0.0/16`, { value: text });
  }
  const base = (ip & maskOf(len)) >>> 0;
  if (base !== ip && !allowHostBits) {
    throw new WeftError('WEFT_BAD_CIDR', `"${text}" has host bits set; did you mean ${formatIp(base)}/${len}?`, { value: text });
  }
  return { base, len };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.len}`;
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.len)) >>> 0) === c.base;
}

export function cidrEquals(a: Cidr, b: Cidr): boolean {
  return a.base === b.base && a.len === b.len;
}

/** Number of subnets of length `subnetLen` in `network`. */
export function subnetCount(network: Cidr, subnetLen: number): number {
  return 2 ** (subnetLen - network.len);
}

/** The i-th subnet of length `subnetLen` inside `network`. */
export function subnetAt(network: Cidr, subnetLen: number, index: number): Cidr {
  return { base: (network.base + index * 2 ** (32 - subnetLen)) >>> 0, len: subnetLen };
}

/** Index of the subnet of length `subnetLen` in `network` holding `ip`; the caller checks containment. */
export function subnetIndexOf(network: Cidr, subnetLen: number, ip: number): number {
  return Math.floor(((ip - network.base) >>> 0) / 2 ** (32 - subnetLen));
}

/**
 * Why `ip` cannot be a node's underlay address, or undefined when it can:
 * "this network" (0/8), loopback (127/8), link-local (169.254/16),
 * multicast (224/4), reserved and broadcast (240/4).
 */
export function underlayAddressProblem(ip: number): string | undefined {
  const a = ip >>> 24;
  if (a === 0) return 'is in 0.0.0.0/8 ("this network")';
  if (a === 127) return 'is a loopback address';
  if (a === 169 && ((ip >>> 16) & 255) === 254) return 'is a link-local address';
  if (a >= 224 && a < 240) return 'is a multicast address';
  if (a >= 240) return 'is reserved or broadcast';
  return undefined;
}
