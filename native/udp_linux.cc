// UDP sockets for the engine: see udp_linux.h.
#include "udp_linux.h"

#include <string.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace weft {

namespace {

constexpr int kSocketBuffer = 4 << 20;

// Raises a buffer size past the sysctl cap when we may (CAP_NET_ADMIN), else as far as allowed.
void grow_buffer(int fd, int force_opt, int opt) {
  const int size = kSocketBuffer;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));  // best effort: the default still works
  }
}

}  // namespace

int udp_open(uint32_t bind_ip, uint16_t port, UdpRole role, int* err) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | (role == UdpRole::kReceiver ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  const int one = 1;
  bool ok = true;
  if (role != UdpRole::kSender) {
    ok = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0;
    grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  }
  if (role != UdpRole::kReceiver) {
    const timeval timeout{0, 100 * 1000};
    ok = ok && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) == 0;
    grow_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(bind_ip);
  if (!ok || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *err = errno;
    close(fd);
    return -1;
  }
  *err = 0;
  return fd;
}

bool udp_bind_device(int fd, const char* dev) {
  return setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, socklen_t(strlen(dev) + 1)) == 0;
}

bool udp_enable_gro(int fd) {
  const int one = 1;
  return setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

bool udp_gso_supported(int fd) {
  int size = 0;
  socklen_t len = sizeof(size);
  return getsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &size, &len) == 0;
}

}  // namespace weft
