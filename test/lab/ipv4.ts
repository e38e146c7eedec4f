// Tiny IPv4 helpers for the lab's address plan. Independent of src/net/ipv4.ts on
// purpose: the lab that checks weft does not lay out its addresses with weft's code.

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`not an IPv4 address: ${ip}`);
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`not an IPv4 value: ${n}`);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Number of addresses in a prefix. */
export function blockSize(prefixLen: number): number {
  return 2 ** (32 - prefixLen);
}

export function isNetworkAddress(ip: string, prefixLen: number): boolean {
  return ipToInt(ip) % blockSize(prefixLen) === 0;
}

/** `base + offset`, as a dotted quad. */
export function addIp(base: string, offset: number): string {
  return intToIp(ipToInt(base) + offset);
}
