// inside (TUN -> UDP): the per-packet decision, same checks, order and
// counters as src/dataplane/inside.ts.
#ifndef WEFT_INSIDE_H_
#define WEFT_INSIDE_H_

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "routes.h"
#include "wire.h"

namespace weft {

constexpr int32_t kInsideDrop = -1;
constexpr int32_t kInsideUnreachable = -2;

// Returns the peer index to send to (in WireGuard when its flags have
// kPeerWireguard), kInsideDrop, or kInsideUnreachable (no node owns the
// destination, or in wireguard-only its node publishes no key, and the
// sender may get an ICMP net-unreachable). Drops are counted.
inline int32_t classify_inside(const uint8_t* pkt, size_t len, const RouteTable& t, Counters& c) {
  if (len < 1 || (pkt[0] >> 4) != 4) {
    c.add(len >= 1 && (pkt[0] >> 4) == 6 ? kInsideDropNotIpv4 : kInsideDropMalformed);
    return kInsideDrop;
  }
  if (!ipv4_valid(pkt, len)) {
    c.add(kInsideDropMalformed);
    return kInsideDrop;
  }
  const int32_t peer = t.lookup(ip_dst(pkt));
  if (peer == kNoPeer) {
    c.add(kInsideDropNoRoute);
    return may_answer_with_icmp(pkt, len) ? kInsideUnreachable : kInsideDrop;
  }
  // wireguard-only: a node that publishes no key cannot be reached (nothing goes in the clear).
  if (t.plaintext_refused && (t.peer_flags[size_t(peer)] & kPeerWireguard) == 0) {
    c.add(kInsideDropPlaintext);
    return may_answer_with_icmp(pkt, len) ? kInsideUnreachable : kInsideDrop;
  }
  return peer;
}

}  // namespace weft

#endif  // WEFT_INSIDE_H_
