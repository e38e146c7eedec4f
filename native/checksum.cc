// The Internet checksum: see checksum.h for the conventions.
//
// The sum adds 32-bit halves of 64-bit loads into 64-bit accumulators: no
// carry chain, and the compiler may vectorize it. Any 32-bit word sum is a
// valid 16-bit ones'-complement sum once folded, since 2^16 = 1 (mod 0xffff).
// The accumulators cannot overflow below 2^32 words (16 GB), far above any packet.
#include "checksum.h"

#include <endian.h>

namespace weft {
namespace {

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

inline uint64_t halves(uint64_t v) { return (v & 0xffffffffu) + (v >> 32); }

// The last odd byte, as the high byte of a zero-padded big-endian word, in host order.
inline uint64_t odd_byte(uint8_t b) {
#if __BYTE_ORDER == __LITTLE_ENDIAN
  return b;
#else
  return static_cast<uint64_t>(b) << 8;
#endif
}

// Folds a 64-bit accumulator plus the incoming 32-bit sum to a 32-bit partial sum.
inline uint32_t finish(uint64_t acc, uint32_t sum) {
  acc += sum;
  acc = halves(acc);
  acc = halves(acc);
  return static_cast<uint32_t>(acc);
}

// Sums (and, when Copy, copies) the tail of fewer than 8 bytes.
template <bool Copy>
inline uint64_t tail(uint8_t* dst, const uint8_t* p, size_t len) {
  uint64_t acc = 0;
  if (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    if (Copy) memcpy(dst, p, 4);
    acc += w;
    p += 4;
    dst += Copy ? 4 : 0;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    if (Copy) memcpy(dst, p, 2);
    acc += w;
    p += 2;
    dst += Copy ? 2 : 0;
    len -= 2;
  }
  if (len == 1) {
    if (Copy) *dst = *p;
    acc += odd_byte(*p);
  }
  return acc;
}

}  // namespace

uint32_t csum_partial(const uint8_t* p, size_t len, uint32_t sum) {
  uint64_t a0 = 0, a1 = 0;
  for (; len >= 32; p += 32, len -= 32) {
    a0 += halves(load64(p)) + halves(load64(p + 8));
    a1 += halves(load64(p + 16)) + halves(load64(p + 24));
  }
  for (; len >= 8; p += 8, len -= 8) a0 += halves(load64(p));
  return finish(a0 + a1 + tail<false>(nullptr, p, len), sum);
}

uint32_t csum_partial_copy(uint8_t* dst, const uint8_t* src, size_t len, uint32_t sum) {
  uint64_t a0 = 0, a1 = 0;
  for (; len >= 32; src += 32, dst += 32, len -= 32) {
    const uint64_t w0 = load64(src), w1 = load64(src + 8), w2 = load64(src + 16), w3 = load64(src + 24);
    memcpy(dst, &w0, 8);
    memcpy(dst + 8, &w1, 8);
    memcpy(dst + 16, &w2, 8);
    memcpy(dst + 24, &w3, 8);
    a0 += halves(w0) + halves(w1);
    a1 += halves(w2) + halves(w3);
  }
  for (; len >= 8; src += 8, dst += 8, len -= 8) {
    const uint64_t w = load64(src);
    memcpy(dst, &w, 8);
    a0 += halves(w);
  }
  return finish(a0 + a1 + tail<true>(dst, src, len), sum);
}

}  // namespace weft
