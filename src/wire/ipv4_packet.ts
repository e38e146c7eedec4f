// Reading and writing the IPv4 packets that cross the TUN: header fields,
// checksums, flow hashing and the ICMP errors weft originates.

export const IPV4_MIN_HEADER = 20;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

export function srcAddr(buf: Uint8Array, off: number): number {
  return readU32(buf, off + 12);
}

export function dstAddr(buf: Uint8Array, off: number): number {
  return readU32(buf, off + 16);
}

/**
 * True when `len` bytes at `off` hold a well-formed IPv4 header: version 4,
 * IHL >= 5 and within the buffer, total length within [IHL*4, len]. The
 * header checksum is not verified here: the kernel that wrote it into the
 * TUN, and the kernel that reads it back, both check it.
 */
export function isValidIpv4(buf: Uint8Array, off: number, len: number): boolean {
  if (len < IPV4_MIN_HEADER || buf[off]! >>> 4 !== 4) return false;
  const ihl = (buf[off]! & 0x0f) * 4;
  if (ihl < IPV4_MIN_HEADER || ihl > len) return false;
  const total = (buf[off + 2]! << 8) | buf[off + 3]!;
  return total >= ihl && total <= len;
}

/** Ones'-complement sum of `len` bytes, folded to 16 bits and complemented. */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  let i = 0;
  for (; i + 1 < len; i += 2) sum += (buf[off + i]! << 8) | buf[off + i + 1]!;
  if (i < len) sum += buf[off + i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * A 32-bit hash of the inner flow (addresses, protocol, and ports for
 * unfragmented TCP/UDP), so one flow keeps one outer source port and the
 * underlay can spread flows over paths.
 */
export function flowHash(buf: Uint8Array, off: number, len: number): number {
  const proto = buf[off + 9]!;
  let h = Math.imul(srcAddr(buf, off) ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ dstAddr(buf, off) ^ (h >>> 13), 0xc2b2ae35);
  h ^= proto;
  const fragmented = (((buf[off + 6]! & 0x3f) << 8) | buf[off + 7]!) !== 0;
  const ihl = (buf[off]! & 0x0f) * 4;
  // `len` bounds the port read, as in C++: a packet too short for its ports hashes without them.
  if ((proto === PROTO_TCP || proto === PROTO_UDP) && !fragmented && len >= ihl + 4) {
    h = Math.imul(h ^ readU32(buf, off + ihl) ^ (h >>> 16), 0x85ebca6b);
  }
  // murmur3's finalizer: every input bit reaches the low bits, which pick the socket.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** ICMP types that are themselves errors: never answered with an error (RFC 1122 3.2.2). */
function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Whether weft may answer this packet with an ICMP error: not an ICMP error
 * itself, not a non-first fragment, not from a multicast/broadcast/zero source.
 */
export function mayAnswerWithIcmp(buf: Uint8Array, off: number, len: number): boolean {
  const src = srcAddr(buf, off);
  if (src === 0 || src >>> 28 === 0xe || src === 0xffffffff) return false;
  if ((((buf[off + 6]! & 0x1f) << 8) | buf[off + 7]!) !== 0) return false;
  if (buf[off + 9] === PROTO_ICMP) {
    const ihl = (buf[off]! & 0x0f) * 4;
    if (len < ihl + 1 || isIcmpError(buf[off + ihl]!)) return false;
  }
  return true;
}

/** Bytes an ICMP error quoting this packet takes: 20 IP + 8 ICMP + header + 8. */
export function icmpErrorLength(buf: Uint8Array, off: number, len: number): number {
  const ihl = (buf[off]! & 0x0f) * 4;
  return 28 + Math.min(len, ihl + 8);
}

/**
 * Writes into `out` at 0 an ICMP destination-unreachable (type 3, `code`)
 * from `from` to the offending packet's source, quoting its header and
 * first 8 payload bytes; `mtu` is the next-hop MTU of code 4 (fragmentation
 * needed). `out` must hold icmpErrorLength() bytes; returns it.
 */
export function writeIcmpUnreachable(out: Uint8Array, pkt: Uint8Array, off: number, len: number, from: number, code: number, mtu = 0): number {
  const quoted = Math.min(len, (pkt[off]! & 0x0f) * 4 + 8);
  const total = 28 + quoted;
  out[0] = 0x45;
  out[1] = 0xc0; // DSCP CS6, as the kernel marks ICMP errors
  out[2] = total >>> 8;
  out[3] = total & 0xff;
  out[4] = 0;
  out[5] = 0;
  out[6] = 0;
  out[7] = 0;
  out[8] = 64;
  out[9] = PROTO_ICMP;
  out[10] = 0;
  out[11] = 0;
  writeU32(out, 12, from);
  writeU32(out, 16, srcAddr(pkt, off));
  const ipSum = internetChecksum(out, 0, 20);
  out[10] = ipSum >>> 8;
  out[11] = ipSum & 0xff;
  out[20] = 3;
  out[21] = code;
  out[22] = 0;
  out[23] = 0;
  out[24] = 0;
  out[25] = 0;
  out[26] = mtu >>> 8;
  out[27] = mtu & 0xff;
  for (let i = 0; i < quoted; i++) out[28 + i] = pkt[off + i]!;
  const icmpSum = internetChecksum(out, 20, 8 + quoted);
  out[22] = icmpSum >>> 8;
  out[23] = icmpSum & 0xff;
  return total;
}

/** Destination-unreachable codes weft sends: no node owns the destination; too long for the path with DF set. */
export const ICMP_NET_UNREACHABLE = 0;
export const ICMP_FRAG_NEEDED = 4;
/** The longest ICMP error weft writes: IPv4 (20) + ICMP (8) + the quoted header (at most 60) + 8 bytes. */
export const ICMP_ERROR_MAX = 28 + 60 + 8;
