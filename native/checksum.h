// The Internet checksum (RFC 1071) for the hot path: a 64-bit ones'-complement
// sum over bytes, the fold, the IPv4 pseudo header and RFC 1624 updates.
// No Node-API here.
//
// Convention (the one Linux uses for __wsum/__sum16): a partial sum adds the
// bytes as 16-bit words loaded in HOST order, at any alignment. Because the
// ones'-complement sum commutes with byte swapping, the folded result, stored
// back with memcpy (not htons), lands in the packet in the right byte order.
// So: load fields with memcpy, never byte-swap checksum values, store with
// store_csum(). Sums of consecutive chunks chain through `sum` as long as
// every chunk but the last has an even length (an odd chunk would shift the
// next one by a byte).
#ifndef WEFT_CHECKSUM_H_
#define WEFT_CHECKSUM_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace weft {

// Adds `len` bytes at `p` (any alignment, any length; an odd last byte counts
// as the high byte of a big-endian word, i.e. zero-padded) to `sum`. Returns
// an unfolded partial sum: chain it into the next call or give it to csum_fold.
uint32_t csum_partial(const uint8_t* p, size_t len, uint32_t sum);

// Copies `len` bytes from src to dst (which must not overlap) and returns
// csum_partial(src, len, sum): one pass over the data instead of two.
uint32_t csum_partial_copy(uint8_t* dst, const uint8_t* src, size_t len, uint32_t sum);

// Folds a partial sum to 16 bits and complements it: the value to store in a
// checksum field (with store_csum). Verifying: csum_fold(sum over the whole
// covered range, checksum field included) == 0 means the checksum is right.
inline uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Folds without complementing: what Linux leaves in the L4 checksum field of
// a CHECKSUM_PARTIAL packet (the pseudo-header sum that the device completes).
inline uint16_t csum_fold_partial(uint32_t sum) { return static_cast<uint16_t>(~csum_fold(sum)); }

// The IPv4 pseudo-header sum for an L4 checksum. saddr and daddr are the
// address bytes as they sit in the packet (load them with memcpy: network
// order in memory); proto and l4_len (L4 header + payload, in bytes) are
// plain host-order numbers.
inline uint32_t ipv4_pseudo_sum(uint32_t saddr, uint32_t daddr, uint8_t proto, uint16_t l4_len) {
  const uint8_t tail[4] = {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
  uint32_t tail_word;
  memcpy(&tail_word, tail, 4);
  uint64_t s = static_cast<uint64_t>(saddr) + daddr + tail_word;
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  // Reduce to 16 bits' worth plus carries, so callers may keep adding.
  return static_cast<uint32_t>((s & 0xffff) + (s >> 16));
}

// Stores a 16-bit checksum field at any alignment, in the convention above.
inline void store_csum(uint8_t* field, uint16_t v) { memcpy(field, &v, 2); }

// The IPv4 header checksum of the `ihl_bytes` header at `ip`, computed with
// the checksum field taken as zero (the field itself is not written).
inline uint16_t ipv4_header_csum(const uint8_t* ip, size_t ihl_bytes) {
  const uint32_t s = csum_partial(ip, 10, 0);
  return csum_fold(csum_partial(ip + 12, ihl_bytes - 12, s));
}

}  // namespace weft

#endif  // WEFT_CHECKSUM_H_
