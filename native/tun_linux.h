// Opening a Linux TUN device (/dev/net/tun + TUNSETIFF). No Node-API here.
#ifndef WEFT_TUN_LINUX_H_
#define WEFT_TUN_LINUX_H_

#include <net/if.h>  // IFNAMSIZ

namespace weft {

// Flag bits of tun_open(). Values are part of the JS API (TUN_MULTI_QUEUE, TUN_VNET_HDR).
constexpr int kTunMultiQueue = 1;  // IFF_MULTI_QUEUE: this fd is one queue of the device
constexpr int kTunVnetHdr = 2;     // IFF_VNET_HDR: each packet is preceded by a virtio_net_hdr

// Opens /dev/net/tun (O_RDWR | O_NONBLOCK | O_CLOEXEC) and attaches it to the
// L3 TUN device `name` (IFF_TUN | IFF_NO_PI, plus the optional flag bits),
// creating the device if it does not exist. An empty name lets the kernel
// pick one (tun0, tun1, ...).
//
// name:     NUL-terminated, at most IFNAMSIZ - 1 bytes (longer is EINVAL, never truncated).
// out_name: a buffer of at least IFNAMSIZ bytes; receives the device's actual name.
// Returns the fd (owned by the caller, who closes it; closing the last fd of
// a non-persistent device removes it), or -1 with *err set to the errno of
// the failing step. On failure nothing stays open.
int tun_open(const char* name, int flags, char* out_name, int* err);

}  // namespace weft

#endif  // WEFT_TUN_LINUX_H_
