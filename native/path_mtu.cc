// PathMtuCache: see path_mtu.h.
#include "path_mtu.h"

#include <netinet/in.h>
#include <sys/socket.h>

namespace weft {

size_t PathMtuCache::get(uint32_t ip, uint64_t now_ns) {
  const size_t slot = (ip * 2654435761u) >> 24;
  if (ip_[slot] == ip && until_[slot] > now_ns) return mtu_[slot];
  if (probe_fd_ < 0) return 0;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);  // any port: connect() on UDP only picks the route
  to.sin_addr.s_addr = htonl(ip);
  int mtu = 0;
  socklen_t n = sizeof(mtu);
  if (connect(probe_fd_, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0 ||
      getsockopt(probe_fd_, IPPROTO_IP, IP_MTU, &mtu, &n) != 0 || mtu <= 0 || mtu > 65535) {
    mtu = 0;
  }
  ip_[slot] = ip;
  mtu_[slot] = uint16_t(mtu);
  until_[slot] = now_ns + kPathMtuTtlNs;
  return size_t(mtu);
}

}  // namespace weft
