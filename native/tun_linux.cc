// Opening a Linux TUN device: see tun_linux.h for the contract.
#include "tun_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace weft {

int tun_open(const char* name, int flags, char* out_name, int* err) {
  out_name[0] = '\0';
  if (name == nullptr || (flags & ~(kTunMultiQueue | kTunVnetHdr)) != 0) {
    *err = EINVAL;
    return -1;
  }
  const size_t len = strlen(name);
  if (len >= IFNAMSIZ) {
    *err = EINVAL;  // the kernel would silently truncate it
    return -1;
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return -1;
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (flags & kTunMultiQueue) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (flags & kTunVnetHdr) ifr.ifr_flags |= IFF_VNET_HDR;
  memcpy(ifr.ifr_name, name, len);  // len < IFNAMSIZ, and ifr is zeroed: NUL-terminated

  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    *err = errno;
    close(fd);  // a failed close cannot change the outcome: the fd is released either way
    return -1;
  }

  memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  out_name[IFNAMSIZ - 1] = '\0';
  *err = 0;
  return fd;
}

}  // namespace weft
