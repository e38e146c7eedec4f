// WireGuard messages on the wire for the native engine: telling the four
// types apart, and sealing a transport message (whitepaper 5.4.6), as
// src/wireguard/messages.ts and transport.ts do (the differential test holds
// them to the same bytes):
//
//   type 4 | receiver index (LE) | counter (LE u64) | AEAD(key, counter, packet || zero padding to 16) | tag
#ifndef WEFT_WG_TRANSPORT_H_
#define WEFT_WG_TRANSPORT_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wg_crypto.h"
#include "wire.h"

namespace weft {

constexpr uint32_t kWgInitiation = 1, kWgResponse = 2, kWgCookieReply = 3, kWgTransport = 4;
constexpr size_t kWgInitiationLen = 148, kWgResponseLen = 92, kWgCookieReplyLen = 64;
constexpr size_t kWgHeaderLen = 16;  // type, receiver, counter
constexpr size_t kWgKeepaliveLen = kWgHeaderLen + kWgTagLen;
// What a transport message adds to a packet on an IPv4 underlay: IP, UDP, header, tag (padding aside).
constexpr size_t kWgOverhead = 20 + 8 + kWgHeaderLen + kWgTagLen;
// Room a packet needs after it to be sealed in place: padding (at most 15) and the tag.
constexpr size_t kWgTailroom = 15 + kWgTagLen;
constexpr size_t kWgInitiationMac1 = 116, kWgResponseMac1 = 60;
constexpr uint32_t kWgMalformed = 0;

// The type of the `len`-byte datagram at p, or kWgMalformed: the type is one
// little-endian u32 (reserved bytes zero), handshake messages have their
// exact sizes and a transport message is at least a keepalive long.
inline uint32_t wg_message_type(const uint8_t* p, size_t len) {
  if (len < 4) return kWgMalformed;
  const uint32_t type = load_le32(p);
  switch (type) {
    case kWgInitiation: return len == kWgInitiationLen ? type : kWgMalformed;
    case kWgResponse: return len == kWgResponseLen ? type : kWgMalformed;
    case kWgCookieReply: return len == kWgCookieReplyLen ? type : kWgMalformed;
    case kWgTransport: return len >= kWgKeepaliveLen ? type : kWgMalformed;
    default: return kWgMalformed;
  }
}

// The padded plaintext length of a `len`-byte packet under `limit` (no padding at or past it).
inline size_t wg_padded(size_t len, size_t limit) {
  if (len >= limit) return len;
  const size_t up = (len + 15) & ~size_t(15);
  return up < limit ? up : limit;
}

// Writes the 16-byte transport header at p.
inline void wg_header(uint8_t* p, uint32_t receiver, uint64_t counter) {
  store_le32(p, kWgTransport);
  store_le32(p + 4, receiver);
  store_le64(p + 8, counter);
}

// Seals the `len`-byte packet at pkt in place into a transport message that
// starts kWgHeaderLen before it (pkt needs that headroom and kWgTailroom
// after it): the zero padding, the header, the ciphertext, the tag. Returns
// the message's length, or 0 when OpenSSL failed.
inline size_t wg_seal_in_place(uint8_t* pkt, size_t len, Aead& aead, uint32_t receiver, uint64_t counter, size_t pad_limit) {
  const size_t padded = wg_padded(len, pad_limit);
  memset(pkt + len, 0, padded - len);
  wg_header(pkt - kWgHeaderLen, receiver, counter);
  if (!aead.begin(counter) || !aead.update(pkt, pkt, padded) || !aead.finish(pkt + padded)) return 0;
  return kWgHeaderLen + padded + kWgTagLen;
}

}  // namespace weft

#endif  // WEFT_WG_TRANSPORT_H_
