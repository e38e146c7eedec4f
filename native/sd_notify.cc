// systemd notifications: see sd_notify.h.
#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace weft {

int sd_notify_send(const char* path, const char* state, size_t state_len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = strlen(path);
  if (len == 0 || len >= sizeof(addr.sun_path)) return ENAMETOOLONG;
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract: no trailing NUL counted
  const socklen_t addr_len = socklen_t(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));

  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ssize_t n;
  do {
    n = sendto(fd, state, state_len, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), addr_len);
  } while (n < 0 && errno == EINTR);
  const int err = n < 0 ? errno : 0;
  close(fd);  // a datagram socket: nothing left to flush, a close error changes nothing
  return err;
}

}  // namespace weft
