// Crafting test packets: IPv4 (ICMP echo, UDP, TCP) with valid checksums,
// virtio_net_hdr prefixes, and VXLAN-GPE frames around them. Tests only; the product parses, never builds these.

import { parseIp } from '../../src/net/ipv4.js';
import { internetChecksum, writeU32 } from '../../src/wire/ipv4_packet.js';
import { writeGpeHeader } from '../../src/wire/vxlan_gpe.js';

export interface Ipv4Spec {
  src: string;
  dst: string;
  proto?: number;
  ttl?: number;
  payload?: Uint8Array;
  tos?: number;
  /** IP identification; 0x1234 unless given. */
  id?: number;
  /** IP options, a multiple of 4 bytes (up to 40). */
  options?: Uint8Array;
  /** Overrides for malformed packets. */
  totalLength?: number;
  /** The whole flags + fragment offset word (0x4000 = DF). */
  fragOffset?: number;
}

export function ipv4(spec: Ipv4Spec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(8);
  const opts = spec.options ?? new Uint8Array(0);
  if (opts.length % 4 !== 0 || opts.length > 40) throw new RangeError(`IP options must be a multiple of 4 bytes, at most 40: ${opts.length}`);
  const ihl = 20 + opts.length;
  const b = Buffer.alloc(ihl + payload.length);
  b[0] = 0x40 | (ihl / 4);
  b[1] = spec.tos ?? 0;
  b.writeUInt16BE(spec.totalLength ?? b.length, 2);
  b.writeUInt16BE(spec.id ?? 0x1234, 4);
  b.writeUInt16BE(spec.fragOffset ?? 0, 6);
  b[8] = spec.ttl ?? 64;
  b[9] = spec.proto ?? 17;
  writeU32(b, 12, parseIp(spec.src));
  writeU32(b, 16, parseIp(spec.dst));
  Buffer.from(opts).copy(b, 20);
  b.writeUInt16BE(internetChecksum(b, 0, ihl), 10);
  Buffer.from(payload).copy(b, ihl);
  return b;
}

/** TCP header flag bits (byte 13). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export interface TcpSpec extends Omit<Ipv4Spec, 'proto' | 'payload'> {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** TCP_* bits; ACK unless given. */
  flags?: number;
  window?: number;
  /** TCP options, a multiple of 4 bytes (up to 40). */
  tcpOptions?: Uint8Array;
  payload?: Uint8Array;
  /**
   * Leave in the checksum field only the folded pseudo-header sum, not
   * complemented (CHECKSUM_PARTIAL), as Linux hands over TSO packets.
   */
  partialChecksum?: boolean;
  /** Store this checksum instead of the right one. */
  checksum?: number;
}

/** The IPv4 pseudo-header sum (unfolded) for an L4 segment of `l4Len` bytes in the packet at `ip`. */
export function pseudoHeaderSum(ip: Uint8Array, proto: number, l4Len: number): number {
  let sum = proto + l4Len;
  for (let i = 12; i < 20; i += 2) sum += (ip[i]! << 8) | ip[i + 1]!;
  return sum;
}

/** An IPv4/TCP packet with valid checksums (unless told otherwise). */
export function tcpPacket(spec: TcpSpec): Buffer {
  const opts = spec.tcpOptions ?? new Uint8Array(0);
  if (opts.length % 4 !== 0 || opts.length > 40) throw new RangeError(`TCP options must be a multiple of 4 bytes, at most 40: ${opts.length}`);
  const payload = spec.payload ?? new Uint8Array(0);
  const thl = 20 + opts.length;
  const tcp = Buffer.alloc(thl + payload.length);
  tcp.writeUInt16BE(spec.sport, 0);
  tcp.writeUInt16BE(spec.dport, 2);
  tcp.writeUInt32BE((spec.seq ?? 1000) >>> 0, 4);
  tcp.writeUInt32BE((spec.ack ?? 5000) >>> 0, 8);
  tcp[12] = (thl / 4) << 4;
  tcp[13] = spec.flags ?? TCP_ACK;
  tcp.writeUInt16BE(spec.window ?? 502, 14);
  Buffer.from(opts).copy(tcp, 20);
  Buffer.from(payload).copy(tcp, thl);
  const pkt = ipv4({ ...spec, proto: 6, payload: tcp });
  const ihl = (pkt[0]! & 0x0f) * 4;
  const pseudo = pseudoHeaderSum(pkt, 6, tcp.length);
  let check: number;
  if (spec.checksum !== undefined) check = spec.checksum;
  else if (spec.partialChecksum) check = ~internetChecksum(pkt, 0, 0, pseudo) & 0xffff;
  else check = internetChecksum(pkt, ihl, tcp.length, pseudo);
  pkt.writeUInt16BE(check, ihl + 16);
  return pkt;
}

/** A 10-byte virtio_net_hdr (little-endian fields) followed by `packet`. */
export interface VnetHdrSpec {
  flags?: number;
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}

export const VNET_HDR_LEN = 10;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_ECN = 0x80;

export function withVnetHdr(h: VnetHdrSpec, packet: Uint8Array): Buffer {
  const b = Buffer.alloc(VNET_HDR_LEN + packet.length);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  b.writeUInt16LE(h.hdrLen ?? 0, 2);
  b.writeUInt16LE(h.gsoSize ?? 0, 4);
  b.writeUInt16LE(h.csumStart ?? 0, 6);
  b.writeUInt16LE(h.csumOffset ?? 0, 8);
  Buffer.from(packet).copy(b, VNET_HDR_LEN);
  return b;
}

export function readVnetHdr(b: Uint8Array): Required<VnetHdrSpec> {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    flags: v[0]!,
    gsoType: v[1]!,
    hdrLen: v.readUInt16LE(2),
    gsoSize: v.readUInt16LE(4),
    csumStart: v.readUInt16LE(6),
    csumOffset: v.readUInt16LE(8),
  };
}

/** ICMP echo request with `size` bytes of data. */
export function icmpEcho(src: string, dst: string, size = 8, ttl = 64): Buffer {
  const icmp = Buffer.alloc(8 + size);
  icmp[0] = 8;
  icmp.writeUInt16BE(0x4242, 4);
  icmp.writeUInt16BE(1, 6);
  for (let i = 0; i < size; i++) icmp[8 + i] = i & 0xff;
  icmp.writeUInt16BE(internetChecksum(icmp, 0, icmp.length), 2);
  return ipv4({ src, dst, proto: 1, ttl, payload: icmp });
}

/** Turns the IPv4 ICMP echo request at buf[off, off+len) into its reply, in place. False if it is not one. */
export function echoReplyInPlace(buf: Buffer, off: number, len: number): boolean {
  if (len < 28 || buf[off]! >>> 4 !== 4 || buf[off + 9] !== 1) return false;
  const ihl = (buf[off]! & 0x0f) * 4;
  const total = buf.readUInt16BE(off + 2);
  if (ihl < 20 || total !== len || ihl + 8 > len || buf[off + ihl] !== 8) return false;
  // Swap source and destination: the header checksum is a sum, so it stays valid.
  const src = buf.readUInt32BE(off + 12);
  buf.writeUInt32BE(buf.readUInt32BE(off + 16), off + 12);
  buf.writeUInt32BE(src, off + 16);
  const icmp = off + ihl;
  buf[icmp] = 0; // echo reply
  buf[icmp + 1] = 0;
  buf.writeUInt16BE(0, icmp + 2);
  buf.writeUInt16BE(internetChecksum(buf, icmp, len - ihl), icmp + 2);
  return true;
}

export function udpPacket(src: string, dst: string, sport: number, dport: number, size = 16): Buffer {
  const udp = Buffer.alloc(8 + size);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  return ipv4({ src, dst, proto: 17, payload: udp });
}

export function gpe(inner: Uint8Array, vni = 1, flags = 0x0c, nextProto = 1): Buffer {
  const b = Buffer.alloc(8 + inner.length);
  writeGpeHeader(b, 0, vni, nextProto);
  b[0] = flags;
  Buffer.from(inner).copy(b, 8);
  return b;
}
