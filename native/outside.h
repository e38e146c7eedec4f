// outside (UDP -> TUN): the per-datagram checks of VXLAN-GPE, same checks,
// order and counters as src/dataplane/outside.ts (a decrypted WireGuard
// packet passes the same inner checks, accept_inner):
//   header (length, flags, VNI, next protocol) -> outer sender is a node
//   -> the pair speaks VXLAN-GPE (not WireGuard, not wireguard-only)
//   -> inner IPv4 well formed -> inner source in that node's subnet (or the node itself)
//   -> inner destination in ours, not its broadcast -> TTL not expired -> deliver
#ifndef WEFT_OUTSIDE_H_
#define WEFT_OUTSIDE_H_

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "routes.h"
#include "wire.h"

namespace weft {

struct SelfSubnet {
  uint32_t base;
  uint32_t mask;
  bool contains(uint32_t ip) const { return (ip & mask) == base; }
  // A destination we deliver: in the subnet, but not its broadcast address
  // (which would reach every host on the bridge). The network address is the
  // TUN's own, this node's overlay address: replies to its traffic come there.
  bool delivers(uint32_t ip) const { return contains(ip) && ip != (base | ~mask); }
};

// True when the inner IPv4 packet in inner[0, inner_len) (a VXLAN-GPE
// datagram's, or a decrypted WireGuard payload with its padding) from the
// node at underlay address `sender` should be written to the TUN.
inline bool accept_inner(const uint8_t* inner, size_t inner_len, uint32_t sender, const RouteTable& t, SelfSubnet self,
                         Counters& c) {
  if (!ipv4_valid(inner, inner_len)) {
    c.add(kOutsideDropMalformed);
    return false;
  }
  if (!t.sender_owns(sender, ip_src(inner))) {
    c.add(kOutsideDropSpoofedSource);
    return false;
  }
  if (!self.delivers(ip_dst(inner))) {
    c.add(kOutsideDropNotLocal);
    return false;
  }
  if (inner[8] == 0) {
    c.add(kOutsideDropTtl);
    return false;
  }
  return true;
}

// True when the inner packet at dg + 8 should be written to the TUN.
inline bool accept_outside(const uint8_t* dg, size_t len, uint32_t outer_src, const RouteTable& t, SelfSubnet self,
                           uint32_t vni, Counters& c) {
  switch (gpe_check(dg, len, vni)) {
    case GpeCheck::kOk: break;
    case GpeCheck::kShort: c.add(kOutsideDropShort); return false;
    case GpeCheck::kBadFlags: c.add(kOutsideDropBadFlags); return false;
    case GpeCheck::kWrongVni: c.add(kOutsideDropVni); return false;
    case GpeCheck::kNextProto: c.add(kOutsideDropNextProto); return false;
  }
  const int64_t sender = t.sender_slot(outer_src);
  if (sender < 0) {
    c.add(kOutsideDropUnknownSender);
    return false;
  }
  if (t.plaintext_refused || (t.sender_flags[size_t(sender)] & kPeerWireguard) != 0) {
    c.add(kOutsideDropPlaintext);
    return false;
  }
  return accept_inner(dg + kGpeHeaderLen, len - kGpeHeaderLen, outer_src, t, self, c);
}

// The datagrams of one received buffer: a single datagram, or a UDP GRO
// train of equal datagrams of `seg` bytes (the last one shorter; seg 0 or
// >= len: one datagram). Calls fn(dg, dlen) for each; an empty buffer is one
// empty datagram, which the checks count as the TypeScript does.
template <typename Byte, typename Fn>
inline void for_each_datagram(Byte* buf, size_t len, size_t seg, Fn&& fn) {
  if (seg == 0 || seg > len) seg = len;
  size_t off = 0;
  do {
    fn(buf + off, len - off < seg ? len - off : seg);
    off += seg;
  } while (off < len);
}

// One received buffer (for_each_datagram): calls deliver(inner, inner_len)
// for every datagram that passes accept_outside, inner_len being the inner
// IPv4 total length (which accept_outside checked lies within the datagram).
template <typename Deliver>
inline void accept_train(const uint8_t* buf, size_t len, size_t seg, uint32_t outer_src, const RouteTable& t,
                         SelfSubnet self, uint32_t vni, Counters& c, Deliver&& deliver) {
  for_each_datagram(buf, len, seg, [&](const uint8_t* dg, size_t dlen) {
    if (!accept_outside(dg, dlen, outer_src, t, self, vni, c)) return;
    const uint8_t* inner = dg + kGpeHeaderLen;
    deliver(inner, size_t(load_be16(inner + 2)));
  });
}

}  // namespace weft

#endif  // WEFT_OUTSIDE_H_
