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
#include <unistd.h>

#include <atomic>
#include <memory>

#include "counters.h"
#include "dataplane.h"
#include "icmp_budget.h"
#include "offload.h"
#include "path_mtu.h"
#include "routes.h"
#include "wg_crypto.h"
#include "wg_transport.h"
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
inline constexpr size_t kSegHdrBufLen = kMaxSegs * (kWgHeaderLen + 60 + 60);  // headroom (the larger, WireGuard's) + IP + TCP headers, at most
// A TUN read goes this far into its slot, so every packet has room in front for the
// larger of the two headers (WireGuard's 16 bytes; VXLAN-GPE's 8 sit right before the packet).
inline constexpr size_t kHeadroom = kWgHeaderLen;
inline constexpr int kStaged = 16;                              // packets held per worker while handshakes run
inline constexpr uint64_t kStagedMaxNs = 90ull * 1000000000ull;  // Rekey-Attempt-Time: then they are dropped
inline constexpr int kHandshakesPerPush = 256;                  // handshake messages gathered before one push to the queue

// Fills one outgoing message: to ip:port, over iov[0, iovlen), as a GSO
// train of `gso_size`-byte datagrams when gso_size is not 0 (ctrl holds its cmsg).
void fill_msg(mmsghdr* m, sockaddr_in* addr, uint32_t ip, uint16_t port, iovec* iov, size_t iovlen, char* ctrl, uint16_t gso_size);

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

// A packet waiting for its peer's WireGuard session, in a slot of the worker's
// stage slab laid out as a TUN read's ([headroom][packet][tailroom]).
struct StagedPacket {
  int slot;
  uint32_t len;
  VnetHdr h;
  uint64_t at_ns;
};

struct Worker {
  int index = 0;
  int tun_fd = -1;
  int rx_fd = -1;
  int stop_fd = -1;
  int wake_fd = -1;               // eventfd: the WireGuard socket opened, or a new table (sessions) to send staged packets on
  std::atomic<int> wg_fd{-1};     // the WireGuard socket (receives and sends), once encryption is on
  bool vnet = false;
  bool gso = false;
  uint32_t vni = 1;
  SelfSubnet self{0, 0};
  uint32_t tun_addr = 0;
  RouteHolder* routes = nullptr;
  Engine* engine = nullptr;
  Counters counters{nullptr};
  SendQueue tx[kSendSockets];
  SendQueue wg_tx;  // on wg_fd

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
  // WireGuard inside: a super-packet's segments sealed into UDP GSO trains, and packets waiting for a session.
  std::unique_ptr<uint8_t[]> wg_train;  // kGsoTrainMax + the largest datagram past it
  std::unique_ptr<uint8_t[]> stage_slab;  // kStaged slots of kSlot
  StagedPacket staged[kStaged];
  int staged_n = 0;
  int stage_free[kStaged];
  int stage_free_n = 0;

  // outside scratch
  std::unique_ptr<uint8_t[]> out_slab;  // kBatch slots of kSlot
  mmsghdr rmsgs[kBatch];
  iovec riov[kBatch];
  sockaddr_in raddr[kBatch];
  alignas(cmsghdr) char rctrl[kBatch][CMSG_SPACE(sizeof(int))];
  TcpCoalescer co;  // points into out_slab until flushed, at the latest at the batch's end
  uint32_t co_packets = 0;  // inner packets in the coalescer, counted when written
  uint32_t co_bytes = 0;
  // WireGuard outside: the mac1 check and the key it holds (all zero: none), and handshake messages gathered for JS.
  Mac1 mac1;
  uint8_t mac1_key[32] = {};
  HandshakeEntry handshakes[kHandshakesPerPush];
  int handshakes_n = 0;

  ~Worker() {
    for (SendQueue& q : tx) {
      if (q.fd >= 0) close(q.fd);
    }
    if (rx_fd >= 0) close(rx_fd);
    if (probe_fd >= 0) close(probe_fd);
    if (wake_fd >= 0) close(wake_fd);
    if (wg_fd.load() >= 0) close(wg_fd.load());
  }

  void run();

  // ---- inside
  void inside_batch(const RouteTable& t);
  // One packet read from the TUN (pkt has kHeadroom bytes in front and kWgTailroom after it).
  void inside_one(uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, uint64_t now_ns);
  void queue_send(SendQueue& q, uint8_t* data, size_t len, uint32_t ip, uint16_t port, uint32_t inner_bytes, uint16_t packets,
                  uint16_t gso_size);
  void flush(SendQueue& q);
  void send_all(int fd, mmsghdr* msgs, int n, const uint16_t* packets, const uint32_t* bytes);
  void flush_all() {
    for (SendQueue& q : tx) flush(q);
    flush(wg_tx);
  }
  // The segment plan of a super-packet within `limit`: segments (cut shorter when the path
  // needs it), or -1 when it cannot be sent (counted, the sender told the MTU when too big).
  int plan_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, size_t headroom, bool partial, size_t limit, uint64_t now_ns,
               TsoPlan* plan);
  void send_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, int sock, size_t limit,
                uint64_t now_ns);
  // The largest inner packet the path to `peer` carries at now_ns, in its encapsulation (SIZE_MAX when unknown).
  size_t inner_limit(const RouteTable& t, int32_t peer, uint64_t now_ns);
  // A plain (not super-) packet made ready to encapsulate for `peer`: false when it
  // is dropped (counted; a DF packet over `limit` answered with fragmentation-needed).
  bool ready_to_send(uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, size_t limit, uint64_t now_ns);

  // ---- WireGuard (wg_batch.cc)
  // A packet for a peer spoken to in WireGuard: sealed on its session, or staged until the handshake completes.
  void inside_wireguard(uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, size_t limit,
                        uint64_t now_ns);
  // A super-packet's segments sealed on k into GSO trains: cut to `limit`, padded up to `pad_limit` at most.
  void send_tso_wireguard(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, Keypair& k,
                          size_t limit, size_t pad_limit, uint64_t now_ns);
  void stage(const uint8_t* pkt, size_t len, const VnetHdr& h, uint64_t now_ns);
  // Sends the staged packets whose peers have a session now (or speak VXLAN-GPE now); drops those too old.
  // Runs on every wake while packets are staged, so after every publish, on the new table: the peers still
  // without a session are flagged on it.
  void flush_staged(const RouteTable& t, uint64_t now_ns);
  // The keypair to send to `peer` on at now_ns, or nullptr (none, or no WireGuard socket yet).
  Keypair* session(const RouteTable& t, int32_t peer, uint64_t now_ns) const;
  // Raises peer's flag on t for JS (engine->wg_take reads the current table's), telling JS when it was down.
  void want_session(const RouteTable& t, int32_t peer);
  void wireguard_batch(const RouteTable& t, int fd);
  void push_handshakes();
  // ICMP destination-unreachable back into the TUN, within the budget: kIcmpNetUnreachable, or
  // kIcmpFragNeeded with the next-hop mtu.
  void send_icmp_error(const uint8_t* pkt, size_t len, uint8_t code, uint16_t mtu, uint64_t now_ns);

  // ---- outside
  // recvmmsg up to kBatch buffers from fd into out_slab: how many (0 when none or an error).
  int receive(int fd);
  // A received buffer's GRO segment size (its length when the kernel did not coalesce).
  size_t gro_segment(int i) const;
  void outside_batch(const RouteTable& t);
  void deliver(const uint8_t* inner, size_t len, bool partial);
  void flush_coalescer();
};

}  // namespace weft

#endif  // WEFT_WORKER_H_
