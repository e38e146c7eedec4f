// A native worker: the state one thread owns (its TUN queue, sockets,
// scratch buffers and counters block) and the steps of its loop, whose
// code lives in the file of each direction: inside_batch.cc (TUN -> UDP)
// and outside_batch.cc (UDP -> TUN); dataplane.cc has the loop and the
// engine's lifecycle. Every buffer is allocated once at start: the loop
// allocates nothing, takes no lock and calls no JS.
#ifndef WEFT_WORKER_H_
#define WEFT_WORKER_H_

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <memory>

#include "counters.h"
#include "dataplane.h"
#include "icmp_budget.h"
#include "offload.h"
#include "path_mtu.h"
#include "routes.h"
#include "wire.h"

namespace weft {

// CLOCK_MONOTONIC_COARSE in ns: a vDSO read of jiffy resolution, plenty for
// the per-second ICMP budget and the path-MTU cache; read once per batch.
inline uint64_t coarse_now_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

inline constexpr int kBatch = 64;            // TUN reads or received buffers per batch
inline constexpr int kSendSockets = 4;       // per worker: outer source ports that flows hash onto
inline constexpr size_t kSlot = 65536 + 64;  // one packet or one GRO train, with headroom
inline constexpr size_t kGsoTrainMax = 65000;  // UDP payload bytes per GSO send (IPv4 datagram limit, less headers)
inline constexpr int kGsoTrainSegs = 64;       // segments per GSO send (the kernel's UDP_MAX_SEGMENTS floor)
inline constexpr size_t kSegHdrBufLen = kMaxSegs * (kGpeHeaderLen + 60 + 60);  // headroom + IP + TCP headers, at most

// One sending socket's queue of messages, flushed with sendmmsg.
struct SendQueue {
  int fd = -1;
  int n = 0;
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_in addr[kBatch];
  uint32_t inner_bytes[kBatch];  // counted as inside_bytes when sent
  uint16_t packets[kBatch];      // inner packets the message carries (GSO trains carry many)
  alignas(cmsghdr) char ctrl[kBatch][CMSG_SPACE(sizeof(uint16_t))];
};

struct Worker {
  int index = 0;
  int tun_fd = -1;
  int rx_fd = -1;
  int stop_fd = -1;
  bool vnet = false;
  bool gso = false;
  uint32_t vni = 1;
  SelfSubnet self{0, 0};
  uint32_t tun_addr = 0;
  RouteHolder* routes = nullptr;
  Engine* engine = nullptr;
  Counters counters{nullptr};
  SendQueue tx[kSendSockets];

  // inside scratch
  std::unique_ptr<uint8_t[]> in_slab;   // kBatch slots of kSlot
  uint8_t seg_hdrs[kSegHdrBufLen];      // a super-packet's segment headers, each behind its VXLAN-GPE header
  // A super-packet's GSO trains: gathered [GPE + headers, payload] pairs.
  mmsghdr tso_msgs[kMaxSegs];
  iovec tso_iov[2 * kMaxSegs];
  uint16_t tso_packets[kMaxSegs];
  uint32_t tso_bytes[kMaxSegs];
  alignas(cmsghdr) char tso_ctrl[kMaxSegs][CMSG_SPACE(sizeof(uint16_t))];
  uint8_t icmp[kVnetHdrLen + kIcmpErrorMax];
  IcmpBudget icmp_budget;
  int probe_fd = -1;  // unconnected UDP socket for path MTU reads
  PathMtuCache pmtu;

  // outside scratch
  std::unique_ptr<uint8_t[]> out_slab;  // kBatch slots of kSlot
  mmsghdr rmsgs[kBatch];
  iovec riov[kBatch];
  sockaddr_in raddr[kBatch];
  alignas(cmsghdr) char rctrl[kBatch][CMSG_SPACE(sizeof(int))];
  TcpCoalescer co;  // points into out_slab until flushed, at the latest at the batch's end
  uint32_t co_packets = 0;  // inner packets in the coalescer, counted when written
  uint32_t co_bytes = 0;

  ~Worker() {
    for (SendQueue& q : tx) {
      if (q.fd >= 0) close(q.fd);
    }
    if (rx_fd >= 0) close(rx_fd);
    if (probe_fd >= 0) close(probe_fd);
  }

  void run();

  // ---- inside
  void inside_batch(const RouteTable& t);
  void queue_send(int sock, uint8_t* data, size_t len, const RouteTable& t, int32_t peer, uint32_t inner_bytes,
                  uint16_t packets, uint16_t gso_size);
  void flush(int sock);
  void send_all(int fd, mmsghdr* msgs, int n, const uint16_t* packets, const uint32_t* bytes);
  void flush_all() {
    for (int s = 0; s < kSendSockets; s++) flush(s);
  }
  void send_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, int sock, size_t limit,
                uint64_t now_ns);
  // The largest inner packet the path to `peer` carries at now_ns (SIZE_MAX when unknown).
  size_t inner_limit(const RouteTable& t, int32_t peer, uint64_t now_ns);
  // ICMP destination-unreachable back into the TUN, within the budget: kIcmpNetUnreachable, or
  // kIcmpFragNeeded with the next-hop mtu.
  void send_icmp_error(const uint8_t* pkt, size_t len, uint8_t code, uint16_t mtu, uint64_t now_ns);

  // ---- outside
  void outside_batch(const RouteTable& t);
  void deliver(const uint8_t* inner, size_t len, bool partial);
  void flush_coalescer();
};

}  // namespace weft

#endif  // WEFT_WORKER_H_
