// Crafting test packets: IPv4 (ICMP echo, UDP, TCP) with valid checksums,
// and VXLAN-GPE frames around them. Tests only; the product parses, never builds these.

import { parseIp } from '../../src/net/ipv4.js';
import { internetChecksum, writeU32 } from '../../src/wire/ipv4_packet.js';
import { writeGpeHeader } from '../../src/wire/vxlan_gpe.js';

export interface Ipv4Spec {
  src: string;
  dst: string;
  proto?: number;
  ttl?: number;
  payload?: Uint8Array;
  /** Overrides for malformed packets. */
  totalLength?: number;
  fragOffset?: number;
}

export function ipv4(spec: Ipv4Spec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(8);
  const b = Buffer.alloc(20 + payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(spec.totalLength ?? b.length, 2);
  b.writeUInt16BE(0x1234, 4);
  b.writeUInt16BE(spec.fragOffset ?? 0, 6);
  b[8] = spec.ttl ?? 64;
  b[9] = spec.proto ?? 17;
  writeU32(b, 12, parseIp(spec.src));
  writeU32(b, 16, parseIp(spec.dst));
  b.writeUInt16BE(internetChecksum(b, 0, 20), 10);
  Buffer.from(payload).copy(b, 20);
  return b;
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
