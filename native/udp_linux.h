// UDP sockets for the engine: the receiving socket group on the cluster port
// (SO_REUSEPORT, one per worker, so the kernel spreads flows over workers),
// sending sockets on ephemeral ports (source-port entropy), the WireGuard
// port's group (each socket receives and sends: WireGuard peers answer the
// port they hear from), and the offloads: UDP_GRO on receive, UDP_SEGMENT
// (GSO) on send, each probed.
#ifndef WEFT_UDP_LINUX_H_
#define WEFT_UDP_LINUX_H_

#include <netinet/udp.h>
#include <stdint.h>

// Older userspace headers lack them; the values are the kernel's ABI.
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace weft {

enum class UdpRole { kReceiver, kSender, kDuplex };

// Opens a UDP socket bound to bind_ip:port (host order; 0 = any), close-on-exec.
// kReceiver: non-blocking, SO_REUSEPORT, large receive buffer. kSender: a
// blocking sender (bounded by a 100 ms send timeout, so a full buffer is
// back-pressure, not a hang) with a large send buffer. kDuplex: both (a
// blocking socket in a SO_REUSEPORT group; its receives pass MSG_DONTWAIT).
// Returns the fd, or -1 with *err set; nothing is left open on failure.
int udp_open(uint32_t bind_ip, uint16_t port, UdpRole role, int* err);

// SO_BINDTODEVICE: the socket sends only through `dev`. False when the kernel
// refuses (unprivileged before Linux 5.7, or no such device).
bool udp_bind_device(int fd, const char* dev);

// Turns on UDP_GRO (the kernel hands over trains of equal datagrams as one
// buffer, with the size in a cmsg). False when the kernel lacks it.
bool udp_enable_gro(int fd);

// True when the kernel accepts UDP_SEGMENT on this socket.
bool udp_gso_supported(int fd);

}  // namespace weft

#endif  // WEFT_UDP_LINUX_H_
