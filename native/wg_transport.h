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

// A piece of a packet's plaintext, for sealing a packet gathered from several places.
struct WgPiece {
  const uint8_t* data;
  size_t len;
};

// Seals the packet made of pieces[0, n) into a transport message at msg:
// the header, the ciphertext of the pieces and of their zero padding (to
// wg_padded of their total under pad_limit) after it, the tag. A piece may
// be where its ciphertext goes (sealing in place), not elsewhere inside the
// message. Returns the message's length, or 0 when OpenSSL failed.
inline size_t wg_seal(uint8_t* msg, const WgPiece* pieces, size_t n, Aead& aead, uint32_t receiver, uint64_t counter, size_t pad_limit) {
  static constexpr uint8_t kZeros[15] = {};
  wg_header(msg, receiver, counter);
  if (!aead.begin(counter)) return 0;
  uint8_t* out = msg + kWgHeaderLen;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (!aead.update(out + len, pieces[i].data, pieces[i].len)) return 0;
    len += pieces[i].len;
  }
  const size_t padded = wg_padded(len, pad_limit);
  if (!aead.update(out + len, kZeros, padded - len) || !aead.finish(out + padded)) return 0;
  return kWgHeaderLen + padded + kWgTagLen;
}

// Seals the `len`-byte packet at pkt in place into a transport message that
// starts kWgHeaderLen before it (pkt needs that headroom and kWgTailroom
// after it). Returns the message's length, or 0 when OpenSSL failed.
inline size_t wg_seal_in_place(uint8_t* pkt, size_t len, Aead& aead, uint32_t receiver, uint64_t counter, size_t pad_limit) {
  const WgPiece piece = {pkt, len};
  return wg_seal(pkt - kWgHeaderLen, &piece, 1, aead, receiver, counter, pad_limit);
}

}  // namespace weft

#endif  // WEFT_WG_TRANSPORT_H_
