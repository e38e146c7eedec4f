// What the fuzz targets share: a fixed route table (the lab's plan: network
// 198.19.0.0/16 in /24s, this node 198.19.2.0/24, peers 1, 3 and 7), the
// outer sources an input picks from, a counters block, built once, and the
// coalescer's flush as a TUN write reads it.
#ifndef WEFT_FUZZ_COMMON_H_
#define WEFT_FUZZ_COMMON_H_

#include <stdint.h>

#include <sys/uio.h>

#include <memory>

#include "../counters.h"
#include "../offload.h"
#include "../outside.h"
#include "../routes.h"

namespace weft {

inline const RouteTable& fuzz_table() {
  static const std::unique_ptr<RouteTable> t = [] {
    const uint32_t net = 0xc6130000u;  // 198.19.0.0
    static int32_t slots[256];
    for (int32_t& s : slots) s = kNoPeer;
    slots[1] = 0;
    slots[3] = 1;
    slots[7] = 2;
    static const uint32_t ips[3] = {0xc6120001u, 0xc6120003u, 0xc6120007u};  // 198.18.0.1, .3, .7
    static const uint16_t ports[3] = {4790, 4790, 4790};
    static const uint16_t wg_ports[3] = {0, 51820, 51820};
    // Both checksum paths; .3 and .7 publish keys, and .7 speaks WireGuard with us (its VXLAN-GPE is refused).
    static const uint8_t flags[3] = {kPeerTcpCsumPartial, kPeerTcpCsumPartial | kPeerHasKey, kPeerHasKey | kPeerWireguard};
    return build_route_table(net, 16, 24, slots, 256, ips, ports, wg_ports, flags, 3, false);
  }();
  return *t;
}

inline constexpr SelfSubnet kFuzzSelf{0xc6130200u, 0xffffff00u};  // 198.19.2.0/24

// The outer source an input's selector byte picks: peers .1, .3 and .7 of fuzz_table(), and a stranger.
inline uint32_t fuzz_source(uint8_t selector) {
  static const uint32_t sources[4] = {0xc6120001u, 0xc6120003u, 0xc6120007u, 0xc6120063u};
  return sources[selector & 3];
}

// Flushes `co` reading every byte a writev would, so ASan sees any iovec past its packet.
inline void fuzz_flush(TcpCoalescer& co) {
  const iovec* iov;
  int iovcnt;
  const size_t n = co.flush(&iov, &iovcnt);
  size_t seen = 0;
  volatile uint8_t sink = 0;
  for (int i = 0; i < iovcnt; i++) {
    for (size_t k = 0; k < iov[i].iov_len; k++) sink = sink ^ static_cast<const uint8_t*>(iov[i].iov_base)[k];
    seen += iov[i].iov_len;
  }
  if (seen != n) __builtin_trap();
}

inline Counters& fuzz_counters() {
  static uint64_t slots[kCounterCount];
  static Counters c(slots);
  return c;
}

}  // namespace weft

#endif  // WEFT_FUZZ_COMMON_H_
