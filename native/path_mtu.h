// The underlay path MTU to each peer, as the kernel's route has it (a route
// `mtu`, or what it learned from ICMP fragmentation-needed), read with one
// connect() + getsockopt(IP_MTU) on a probe socket and cached per worker for
// kPathMtuTtlNs, so a narrower path is noticed within that time and the
// cost is one probe per peer per interval. Not thread-safe: one per worker.
#ifndef WEFT_PATH_MTU_H_
#define WEFT_PATH_MTU_H_

#include <stddef.h>
#include <stdint.h>

namespace weft {

inline constexpr uint64_t kPathMtuTtlNs = 2000000000ull;  // 2 s

class PathMtuCache {
 public:
  // probe_fd: an unconnected UDP socket bound to the engine's address, owned
  // by the caller; -1 (the default) reads nothing.
  explicit PathMtuCache(int probe_fd = -1) : probe_fd_(probe_fd) {}

  // The path MTU to `ip` (host order) at now_ns, or 0 when it cannot be read
  // (no probe socket, no route): the caller then applies no limit.
  size_t get(uint32_t ip, uint64_t now_ns);

 private:
  static constexpr size_t kSlots = 256;  // direct-mapped: a collision costs a probe, nothing else
  int probe_fd_;
  uint32_t ip_[kSlots] = {};
  uint16_t mtu_[kSlots] = {};
  uint64_t until_[kSlots] = {};
};

}  // namespace weft

#endif  // WEFT_PATH_MTU_H_
