// outside, on the WireGuard port: the checks of one datagram, same checks,
// order and counters as src/dataplane/wireguard_outside.ts:
//
//   type and length -> handshake message: a node with a key sent it -> mac1
//     made with our public key -> queued for the sessions in JS
//   transport message: receiver index is a session of ours -> the source is
//     that session's node -> younger than Reject-After-Time -> decrypted in
//     place, the tag authenticates -> counter under Reject-After-Messages
//     -> new to the replay window -> (empty: a keepalive) -> accept_inner
//     from that node
#ifndef WEFT_WG_OUTSIDE_H_
#define WEFT_WG_OUTSIDE_H_

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "outside.h"
#include "routes.h"
#include "wg_keypair.h"
#include "wg_transport.h"

namespace weft {

enum class WgVerdict { kDrop, kHandshake, kKeepalive, kData };

// One WireGuard datagram of `len` bytes at dg from underlay address `src`.
// kHandshake: a pre-checked handshake message for the sessions. kData: the
// packet was decrypted in place and passed accept_inner; *inner and
// *inner_len give it (its IP total length). kKeepalive: an authenticated
// empty message. kDrop: counted. `mac1` is keyed with this node's mac1 key;
// `ctx` picks the keypairs' contexts (the worker's index).
inline WgVerdict accept_wireguard(uint8_t* dg, size_t len, uint32_t src, const RouteTable& t, SelfSubnet self, Mac1& mac1, int ctx,
                                  uint64_t now_ns, Counters& c, const uint8_t** inner, size_t* inner_len) {
  const uint32_t type = wg_message_type(dg, len);
  if (type == kWgMalformed) {
    c.add(kOutsideDropWgMalformed);
    return WgVerdict::kDrop;
  }
  if (type != kWgTransport) {
    if ((t.flags_of_sender(src) & kPeerHasKey) == 0) {
      c.add(kOutsideDropUnknownSender);
      return WgVerdict::kDrop;
    }
    if (type != kWgCookieReply && !mac1.valid(dg, type == kWgInitiation ? kWgInitiationMac1 : kWgResponseMac1)) {
      c.add(kOutsideDropWgMac1);
      return WgVerdict::kDrop;
    }
    return WgVerdict::kHandshake;
  }
  Keypair* k = t.wg.find(load_le32(dg + 4));
  if (k == nullptr) {
    c.add(kOutsideDropWgUnknownIndex);
    return WgVerdict::kDrop;
  }
  if (k->peer_ip != src) {
    c.add(kOutsideDropUnknownSender);
    return WgVerdict::kDrop;
  }
  if (now_ns - k->created_ns >= kRejectAfterTimeNs) {
    c.add(kOutsideDropWgExpired);
    return WgVerdict::kDrop;
  }
  const uint64_t counter = load_le64(dg + 8);
  uint8_t* body = dg + kWgHeaderLen;
  const size_t body_len = len - kWgHeaderLen - kWgTagLen;
  if (!k->open[ctx].open(counter, body, body, body_len, body + body_len)) {
    c.add(kOutsideDropWgAuth);
    return WgVerdict::kDrop;
  }
  if (counter >= kRejectAfterMessages) {
    c.add(kOutsideDropWgExpired);
    return WgVerdict::kDrop;
  }
  // The keypair's lock guards its replay window only: held for this check, not the decryption or the delivery.
  k->lock();
  const bool fresh = k->replay.accept(counter);
  k->unlock();
  if (!fresh) {
    c.add(kOutsideDropWgReplay);
    return WgVerdict::kDrop;
  }
  k->confirm();
  Keypair::stamp(k->any_rx_ns, now_ns);
  if (body_len == 0) return WgVerdict::kKeepalive;
  Keypair::stamp(k->data_rx_ns, now_ns);
  if (!accept_inner(body, body_len, k->peer_ip, t, self, c)) return WgVerdict::kDrop;
  *inner = body;
  *inner_len = load_be16(body + 2);
  return WgVerdict::kData;
}

}  // namespace weft

#endif  // WEFT_WG_OUTSIDE_H_
