// Wire formats the engine reads and writes, as inline functions: byte
// order (big-endian, and WireGuard's little-endian), the VXLAN-GPE header
// (docs/architecture.md, "Wire format"), IPv4 header fields, the flow hash,
// and the ICMP errors weft originates. Mirrors src/wire/*.ts; the
// differential tests hold the two to the same results.
#ifndef WEFT_WIRE_H_
#define WEFT_WIRE_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checksum.h"

namespace weft {

// ---- Specification constants (docs/architecture.md, "Wire format")
constexpr size_t kGpeHeaderLen = 8;
// Outer IPv4 (20) + UDP (8) + VXLAN-GPE: what encapsulation adds to an inner packet.
constexpr size_t kEncapOverhead = 20 + 8 + kGpeHeaderLen;
constexpr uint8_t kGpeFlags = 0x0c;  // I | P, version 0
constexpr uint8_t kGpeFlagI = 0x08, kGpeFlagP = 0x04, kGpeFlagO = 0x01, kGpeVersionMask = 0x30;
constexpr uint8_t kGpeNextProtoIpv4 = 0x01;
constexpr size_t kIpv4MinHeader = 20;
constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17;
constexpr size_t kIcmpErrorMax = 28 + 60 + 8;

inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
inline uint16_t load_be16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
// Little-endian, as WireGuard's messages carry their fields.
inline uint32_t load_le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
inline uint64_t load_le64(const uint8_t* p) { return uint64_t(load_le32(p)) | uint64_t(load_le32(p + 4)) << 32; }
inline void store_le16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
inline void store_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = uint8_t(v >> (8 * i));
}
inline void store_le64(uint8_t* p, uint64_t v) {
  store_le32(p, uint32_t(v));
  store_le32(p + 4, uint32_t(v >> 32));
}

inline uint32_t ip_src(const uint8_t* ip) { return load_be32(ip + 12); }
inline uint32_t ip_dst(const uint8_t* ip) { return load_be32(ip + 16); }

// A well-formed IPv4 header within len bytes: version 4, IHL >= 5 and inside
// the buffer, total length in [IHL*4, len]. Checksums are the kernel's job.
inline bool ipv4_valid(const uint8_t* p, size_t len) {
  if (len < kIpv4MinHeader || (p[0] >> 4) != 4) return false;
  const size_t ihl = size_t(p[0] & 0x0f) * 4;
  if (ihl < kIpv4MinHeader || ihl > len) return false;
  const size_t total = load_be16(p + 2);
  return total >= ihl && total <= len;
}

inline void gpe_write(uint8_t* p, uint32_t vni) {
  p[0] = kGpeFlags;
  p[1] = 0;
  p[2] = 0;
  p[3] = kGpeNextProtoIpv4;
  p[4] = uint8_t(vni >> 16);
  p[5] = uint8_t(vni >> 8);
  p[6] = uint8_t(vni);
  p[7] = 0;
}

enum class GpeCheck { kOk, kShort, kBadFlags, kWrongVni, kNextProto };

// Version 0, I and P set, O clear; reserved bits and B ignored (the draft's receiver rules).
inline GpeCheck gpe_check(const uint8_t* p, size_t len, uint32_t vni) {
  if (len < kGpeHeaderLen) return GpeCheck::kShort;
  const uint8_t f = p[0];
  if ((f & kGpeVersionMask) != 0 || (f & kGpeFlagI) == 0 || (f & kGpeFlagP) == 0 || (f & kGpeFlagO) != 0) return GpeCheck::kBadFlags;
  if (((uint32_t(p[4]) << 16) | (uint32_t(p[5]) << 8) | p[6]) != vni) return GpeCheck::kWrongVni;
  if (p[3] != kGpeNextProtoIpv4) return GpeCheck::kNextProto;
  return GpeCheck::kOk;
}

// Same hash as src/wire/ipv4_packet.ts flowHash: addresses, protocol, and
// the ports of unfragmented TCP/UDP. `len` bounds the port read.
inline uint32_t flow_hash(const uint8_t* p, size_t len) {
  const uint8_t proto = p[9];
  uint32_t h = (ip_src(p) ^ 0x9e3779b9u) * 0x85ebca6bu;
  h = (h ^ ip_dst(p) ^ (h >> 13)) * 0xc2b2ae35u;
  h ^= proto;
  const bool fragmented = (((p[6] & 0x3f) << 8) | p[7]) != 0;
  const size_t ihl = size_t(p[0] & 0x0f) * 4;
  if ((proto == kProtoTcp || proto == kProtoUdp) && !fragmented && len >= ihl + 4) {
    h = (h ^ load_be32(p + ihl) ^ (h >> 16)) * 0x85ebca6bu;
  }
  // murmur3's finalizer: every input bit reaches the low bits, which pick the socket.
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// Whether weft may answer with an ICMP error (RFC 1122 3.2.2): not an ICMP
// error itself, not a non-first fragment, not from a multicast/zero/broadcast source.
inline bool may_answer_with_icmp(const uint8_t* p, size_t len) {
  const uint32_t src = ip_src(p);
  if (src == 0 || (src >> 28) == 0xe || src == 0xffffffffu) return false;
  if ((((p[6] & 0x1f) << 8) | p[7]) != 0) return false;
  if (p[9] == kProtoIcmp) {
    const size_t ihl = size_t(p[0] & 0x0f) * 4;
    if (len < ihl + 1) return false;
    const uint8_t t = p[ihl];
    if (t == 3 || t == 4 || t == 5 || t == 11 || t == 12) return false;
  }
  return true;
}

// Writes an ICMP destination-unreachable (type 3, `code`) from `from` to the
// packet's source, quoting its header and 8 payload bytes, into `out`
// (kIcmpErrorMax bytes); `mtu` is the next-hop MTU of code 4
// (fragmentation needed), 0 otherwise. Returns its length. Same bytes as
// the TS writer.
// Destination-unreachable codes weft sends (src/wire/ipv4_packet.ts has the same).
constexpr uint8_t kIcmpNetUnreachable = 0, kIcmpFragNeeded = 4;

inline size_t write_icmp_unreachable(uint8_t* out, const uint8_t* pkt, size_t len, uint32_t from, uint8_t code,
                                     uint16_t mtu = 0) {
  size_t quoted = size_t(pkt[0] & 0x0f) * 4 + 8;
  if (quoted > len) quoted = len;
  const size_t total = 28 + quoted;
  memset(out, 0, 28);
  out[0] = 0x45;
  out[1] = 0xc0;
  store_be16(out + 2, uint16_t(total));
  out[8] = 64;
  out[9] = kProtoIcmp;
  store_be32(out + 12, from);
  store_be32(out + 16, ip_src(pkt));
  store_csum(out + 10, csum_fold(csum_partial(out, 20, 0)));
  out[20] = 3;
  out[21] = code;
  store_be16(out + 26, mtu);
  memcpy(out + 28, pkt, quoted);
  store_csum(out + 22, csum_fold(csum_partial(out + 20, 8 + quoted, 0)));
  return total;
}

}  // namespace weft

#endif  // WEFT_WIRE_H_
