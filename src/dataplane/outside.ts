// outside: the UDP -> TUN direction's checks for one VXLAN-GPE datagram,
// the executable specification every engine follows (same checks, same
// order, same counters). A WireGuard packet, once decrypted, passes the same
// inner checks (acceptInner), its sender being the session's node.
//
//   header (length, flags, VNI, next protocol) -> outer sender is a node
//   -> the pair speaks VXLAN-GPE (not WireGuard, not wireguard-only)
//   -> inner IPv4 well formed -> inner source inside that node's subnet (or the node itself)
//   -> inner destination in ours, not its broadcast -> TTL not expired -> deliver

import { GPE_NEXT_PROTO_IPV4, PEER_WIREGUARD, VXLAN_GPE_HEADER_LEN } from '../constants.js';
import { type Cidr, contains, maskOf } from '../net/ipv4.js';
import type { RouteTable } from '../routes/route_table.js';
import { GpeCheck, checkGpeHeader } from '../wire/vxlan_gpe.js';
import { dstAddr, isValidIpv4, srcAddr } from '../wire/ipv4_packet.js';
import { C } from './counters.js';

const GPE_DROP_COUNTER: readonly number[] = [
  -1,
  C.outside_drop_short,
  C.outside_drop_bad_flags,
  C.outside_drop_vni,
  C.outside_drop_next_proto,
];

/**
 * Checks a VXLAN-GPE datagram of `len` bytes at `off` that came from
 * underlay address `outerSrc` (0 when the sender is no known node). Returns
 * true when the inner packet, at off + 8, should be written to the TUN;
 * otherwise the drop is counted in `c`.
 */
export function acceptOutside(
  buf: Uint8Array,
  off: number,
  len: number,
  outerSrc: number,
  table: RouteTable,
  self: Cidr,
  vni: number,
  c: Float64Array,
): boolean {
  const check = checkGpeHeader(buf, off, len, vni, GPE_NEXT_PROTO_IPV4);
  if (check !== GpeCheck.Ok) {
    c[GPE_DROP_COUNTER[check]!]!++;
    return false;
  }
  const flags = outerSrc === 0 ? undefined : table.flagsOfSender(outerSrc);
  if (flags === undefined) {
    c[C.outside_drop_unknown_sender]!++;
    return false;
  }
  if (table.encryption.plaintextRefused || (flags & PEER_WIREGUARD) !== 0) {
    c[C.outside_drop_plaintext]!++;
    return false;
  }
  return acceptInner(buf, off + VXLAN_GPE_HEADER_LEN, len - VXLAN_GPE_HEADER_LEN, outerSrc, table, self, c);
}

/**
 * Checks the inner IPv4 packet in `len` bytes at `inner` (a VXLAN-GPE
 * datagram's, or a decrypted WireGuard payload, its padding included) from
 * the node at underlay address `sender`: true when it should be written to
 * the TUN (its own total length says how much); otherwise the drop is
 * counted in `c`.
 */
export function acceptInner(buf: Uint8Array, inner: number, innerLen: number, sender: number, table: RouteTable, self: Cidr, c: Float64Array): boolean {
  if (!isValidIpv4(buf, inner, innerLen)) {
    c[C.outside_drop_malformed]!++;
    return false;
  }
  if (!table.senderOwns(sender, srcAddr(buf, inner))) {
    c[C.outside_drop_spoofed_source]!++;
    return false;
  }
  const dst = dstAddr(buf, inner);
  // Not the subnet's broadcast address (every host on the bridge). Its network address is the TUN's own: replies to this node come there.
  if (!contains(self, dst) || dst === (self.base | ~maskOf(self.len)) >>> 0) {
    c[C.outside_drop_not_local]!++;
    return false;
  }
  if (buf[inner + 8] === 0) {
    c[C.outside_drop_ttl]!++;
    return false;
  }
  return true;
}
