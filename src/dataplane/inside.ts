// inside: the TUN -> UDP direction's decision for one packet, the executable
// specification every engine follows (same checks, same order, same counters).

import { PEER_WIREGUARD } from '../constants.js';
import { NO_PEER, type RouteTable } from '../routes/route_table.js';
import { dstAddr, isValidIpv4, mayAnswerWithIcmp } from '../wire/ipv4_packet.js';
import { C } from './counters.js';

/** Negative verdicts of classifyInside; a verdict >= 0 is the peer index to send to. */
export const INSIDE_DROP = -1;
export const INSIDE_UNREACHABLE = -2;

/**
 * Classifies a packet of `len` bytes at `off` read from the TUN, counting
 * any drop in `c`. Returns the peer index to send to (in WireGuard when its
 * flags have PEER_WIREGUARD), INSIDE_DROP, or INSIDE_UNREACHABLE when the
 * sender should get ICMP net-unreachable (no node owns the destination, or
 * in wireguard-only its node publishes no key; the drop is already counted).
 */
export function classifyInside(pkt: Uint8Array, off: number, len: number, table: RouteTable, c: Float64Array): number {
  if (len < 1 || pkt[off]! >>> 4 !== 4) {
    c[len >= 1 && pkt[off]! >>> 4 === 6 ? C.inside_drop_not_ipv4 : C.inside_drop_malformed]!++;
    return INSIDE_DROP;
  }
  if (!isValidIpv4(pkt, off, len)) {
    c[C.inside_drop_malformed]!++;
    return INSIDE_DROP;
  }
  const peer = table.lookup(dstAddr(pkt, off));
  if (peer === NO_PEER) {
    c[C.inside_drop_no_route]!++;
    return mayAnswerWithIcmp(pkt, off, len) ? INSIDE_UNREACHABLE : INSIDE_DROP;
  }
  // wireguard-only: a node that publishes no key cannot be reached (nothing goes in the clear).
  if (table.encryption.plaintextRefused && (table.peerFlagsAt(peer) & PEER_WIREGUARD) === 0) {
    c[C.inside_drop_plaintext]!++;
    return mayAnswerWithIcmp(pkt, off, len) ? INSIDE_UNREACHABLE : INSIDE_DROP;
  }
  return peer;
}
