// The native engine's workers: see dataplane.h for the contract.
//
// inside, per batch (TUN -> UDP):
//   read up to kBatch packets (each maybe a 64 KB TSO super-packet with a
//   virtio-net header) -> classify_inside -> plain packet: finish its
//   checksum, write the VXLAN-GPE header in the headroom in front of it,
//   queue it on the sending socket its flow hashes to; super-packet: split
//   into MSS segments with headers at a fixed stride, each behind its own
//   VXLAN-GPE header, sent as UDP GSO trains -> sendmmsg per socket.
// outside, per batch (UDP -> TUN):
//   recvmmsg up to kBatch buffers (each maybe a UDP GRO train of equal
//   datagrams) -> accept_outside per datagram -> TCP coalescer -> one TUN
//   write per super-packet (or per packet without vnet headers).
//
// Memory: every buffer is allocated once per worker at start; the loop
// allocates nothing, takes no lock and calls no JS.
#include "dataplane.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>

#include <new>

#include "counters.h"
#include "icmp_budget.h"
#include "inside.h"
#include "offload.h"
#include "path_mtu.h"
#include "udp_linux.h"
#include "wire.h"

namespace weft {

namespace {

constexpr int kBatch = 64;            // TUN reads or received buffers per batch
constexpr int kSendSockets = 4;       // per worker: outer source ports that flows hash onto
constexpr size_t kVnetLen = kVnetHdrLen;
constexpr size_t kCoalescerBufLen = kVnetHdrLen + kMaxIpv4Packet;
constexpr size_t kSlot = 65536 + 64;  // one packet or one GRO train, with headroom
constexpr size_t kGsoTrainMax = 65000;  // UDP payload bytes per GSO send (IPv4 datagram limit, less headers)
constexpr int kGsoTrainSegs = 64;       // segments per GSO send (the kernel's UDP_MAX_SEGMENTS floor)
// Segments of one TSO super-packet. The TUN's gso_max_segs is set to this
// (host/netconf.ts), so the kernel never hands over more.
constexpr size_t kSegHdrBufLen = kMaxSegs * (kGpeHeaderLen + 60 + 60);  // headroom + IP + TCP headers, at most

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

void fill_msg(mmsghdr* m, sockaddr_in* addr, const RouteTable& t, int32_t peer, iovec* iov, size_t iovlen, char* ctrl,
              uint16_t gso_size);

}  // namespace

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
  uint8_t icmp[kVnetLen + kIcmpErrorMax];
  IcmpBudget icmp_budget;
  int probe_fd = -1;  // unconnected UDP socket for path MTU reads
  std::unique_ptr<PathMtuCache> pmtu;

  // outside scratch
  std::unique_ptr<uint8_t[]> out_slab;  // kBatch slots of kSlot
  mmsghdr rmsgs[kBatch];
  iovec riov[kBatch];
  sockaddr_in raddr[kBatch];
  alignas(cmsghdr) char rctrl[kBatch][CMSG_SPACE(sizeof(int))];
  std::unique_ptr<uint8_t[]> co_buf;    // the coalescer's super-packet
  std::unique_ptr<TcpCoalescer> co;
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
  void send_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, int sock, size_t limit);
  // The largest inner packet the path to `peer` carries (SIZE_MAX when unknown).
  size_t inner_limit(const RouteTable& t, int32_t peer);
  // ICMP destination-unreachable back into the TUN, within the budget: code 0 (no route) or 4 (fragmentation needed, mtu).
  void send_icmp_error(const uint8_t* pkt, size_t len, uint8_t code, uint16_t mtu);

  // ---- outside
  void outside_batch(const RouteTable& t);
  void deliver(const uint8_t* inner, size_t len);
  void flush_coalescer();
};

// ---------------------------------------------------------------- the loop

void Worker::run() {
  pollfd fds[3] = {{tun_fd, POLLIN, 0}, {rx_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    routes->leave(index);
    const int r = poll(fds, 3, -1);
    routes->enter(index);
    if (r < 0) {
      if (errno == EINTR) continue;
      return;  // EFAULT/EINVAL/ENOMEM: nothing sane left to do on this worker
    }
    if (fds[2].revents != 0) return;
    // A deleted TUN device reports POLLERR/POLLHUP forever: stop rather than spin.
    if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return;
    const RouteTable& t = *routes->current();
    if ((fds[0].revents & POLLIN) != 0) inside_batch(t);
    if ((fds[1].revents & POLLIN) != 0) outside_batch(t);
  }
}

// ---------------------------------------------------------------- inside

void Worker::inside_batch(const RouteTable& t) {
  // A slot: [8 headroom][vnet header?][packet]; the VXLAN-GPE header is
  // written into the 8 bytes right in front of the packet.
  const size_t read_at = vnet ? 0 : kGpeHeaderLen;
  for (int i = 0; i < kBatch; i++) {
    uint8_t* slot = in_slab.get() + size_t(i) * kSlot;
    const ssize_t n = read(tun_fd, slot + read_at, kSlot - read_at);
    if (n < 0) {
      if (errno == EINTR) {
        i--;
        continue;
      }
      break;  // EAGAIN: drained (anything else shows up in poll's revents)
    }
    size_t len = size_t(n);
    uint8_t* pkt = slot + read_at;
    VnetHdr h{};
    if (vnet) {
      if (!vnet_hdr_read(pkt, len, &h)) {
        counters.add(kInsideDropMalformed);
        continue;
      }
      pkt += kVnetLen;
      len -= kVnetLen;
    }
    const int32_t peer = classify_inside(pkt, len, t, counters);
    if (peer == kInsideDrop) continue;
    if (peer == kInsideUnreachable) {
      send_icmp_error(pkt, len, 0, 0);
      continue;
    }
    const int sock = int(flow_hash(pkt, len) % kSendSockets);
    const size_t limit = inner_limit(t, peer);
    if (vnet && h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
      flush(sock);  // keep the flow's order: earlier packets go first
      send_tso(pkt, len, h, t, peer, sock, limit);
      continue;
    }
    // Too long for the path: with DF the sender must learn the MTU (as a
    // router would tell it); without, the kernel fragments the datagram.
    if (len > limit && (pkt[6] & 0x40) != 0) {
      counters.add(kInsideDropTooBig);
      send_icmp_error(pkt, len, 4, uint16_t(limit));
      continue;
    }
    if (vnet && (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 && !complete_checksum(pkt, len, h.csum_start, h.csum_offset)) {
      counters.add(kInsideDropMalformed);
      continue;
    }
    gpe_write(pkt - kGpeHeaderLen, vni);
    queue_send(sock, pkt - kGpeHeaderLen, len + kGpeHeaderLen, t, peer, uint32_t(len), 1, 0);
  }
  flush_all();
}

void Worker::queue_send(int sock, uint8_t* data, size_t len, const RouteTable& t, int32_t peer, uint32_t inner_bytes,
                        uint16_t packets, uint16_t gso_size) {
  SendQueue& q = tx[sock];
  if (q.n == kBatch) flush(sock);
  const int m = q.n++;
  q.iov[m] = {data, len};
  q.inner_bytes[m] = inner_bytes;
  q.packets[m] = packets;
  fill_msg(&q.msgs[m], &q.addr[m], t, peer, &q.iov[m], 1, q.ctrl[m], gso_size);
}

void Worker::flush(int sock) {
  SendQueue& q = tx[sock];
  send_all(q.fd, q.msgs, q.n, q.packets, q.inner_bytes);
  q.n = 0;
}

// sendmmsg until every message went or failed; counts inner packets and bytes.
void Worker::send_all(int fd, mmsghdr* msgs, int n, const uint16_t* packets, const uint32_t* bytes) {
  int done = 0;
  while (done < n) {
    const int r = sendmmsg(fd, msgs + done, unsigned(n - done), 0);
    if (r > 0) {
      for (int m = done; m < done + r; m++) {
        counters.add(kInsidePackets, packets[m]);
        counters.add(kInsideBytes, bytes[m]);
      }
      done += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // The first unsent message failed (a full buffer past the send timeout,
    // EMSGSIZE, a down route...): count it and go on with the rest.
    counters.add(kInsideDropSendError, packets[done]);
    done++;
  }
}

namespace {

// Fills one outgoing message: to the peer, over iov[0, iovlen), as a GSO
// train of `gso_size`-byte datagrams when gso_size is not 0.
void fill_msg(mmsghdr* m, sockaddr_in* addr, const RouteTable& t, int32_t peer, iovec* iov, size_t iovlen, char* ctrl,
              uint16_t gso_size) {
  addr->sin_family = AF_INET;
  addr->sin_port = htons(t.peer_port[size_t(peer)]);
  addr->sin_addr.s_addr = htonl(t.peer_ip[size_t(peer)]);
  msghdr& mh = m->msg_hdr;
  mh.msg_name = addr;
  mh.msg_namelen = sizeof(sockaddr_in);
  mh.msg_iov = iov;
  mh.msg_iovlen = iovlen;
  mh.msg_flags = 0;
  if (gso_size == 0) {
    mh.msg_control = nullptr;
    mh.msg_controllen = 0;
    return;
  }
  mh.msg_control = ctrl;
  mh.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
  cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(cm), &gso_size, sizeof(gso_size));
}

}  // namespace

size_t Worker::inner_limit(const RouteTable& t, int32_t peer) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  const size_t mtu = pmtu->get(t.peer_ip[size_t(peer)], uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec));
  return mtu > kEncapOverhead ? mtu - kEncapOverhead : SIZE_MAX;
}

void Worker::send_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, int sock,
                      size_t limit) {
  TsoPlan plan;
  int segs = tso_headers(pkt, len, h, seg_hdrs, sizeof(seg_hdrs), kGpeHeaderLen, &plan, kMaxSegs);
  if (segs <= 0) {
    counters.add(kInsideDropMalformed);
    return;
  }
  // Segments too long for the path: cut them shorter (the sender's TCP sees
  // nothing but ordinary segments). When that takes more than kMaxSegs,
  // tell the sender the path MTU instead, so its next super-packets fit.
  if (plan.hdrs + plan.mss > limit) {
    VnetHdr shorter = h;
    shorter.gso_size = uint16_t(limit > plan.hdrs ? limit - plan.hdrs : 0);
    segs = shorter.gso_size > 0 ? tso_headers(pkt, len, shorter, seg_hdrs, sizeof(seg_hdrs), kGpeHeaderLen, &plan, kMaxSegs) : -1;
    if (segs <= 0) {
      counters.add(kInsideDropTooBig);
      send_icmp_error(pkt, len, 4, uint16_t(limit));
      return;
    }
  }
  // Each datagram gathers [VXLAN-GPE + segment headers] from seg_hdrs and
  // the segment's payload straight from the super-packet: no payload copy.
  // Trains of equal datagrams (the last may be shorter) go in one message
  // with UDP_SEGMENT; without GSO, one message per datagram.
  const size_t stride = plan.hdr_stride + plan.mss;  // one full datagram
  const int fit = int(kGsoTrainMax / stride);
  // fit is 0 only for a datagram over kGsoTrainMax (a huge --mtu): send those one by one.
  const int per_train = !gso || fit < 1 ? 1 : fit < kGsoTrainSegs ? fit : kGsoTrainSegs;
  sockaddr_in& addr = tx[sock].addr[0];  // the queue is empty: flushed before us
  int msgs = 0;
  size_t v = 0;
  for (int first = 0; first < segs; first += per_train) {
    const int count = segs - first < per_train ? segs - first : per_train;
    iovec* iov = &tso_iov[v];
    uint32_t inner = 0;
    for (int s = first; s < first + count; s++) {
      uint8_t* hdr = seg_hdrs + size_t(s) * plan.hdr_stride;
      const size_t payload = s + 1 < segs ? plan.mss : plan.last_payload;
      gpe_write(hdr, vni);
      tso_iov[v++] = {hdr, plan.hdr_stride};
      tso_iov[v++] = {const_cast<uint8_t*>(pkt + plan.hdrs + size_t(s) * plan.mss), payload};
      inner += uint32_t(plan.hdrs + payload);
    }
    tso_packets[msgs] = uint16_t(count);
    tso_bytes[msgs] = inner;
    fill_msg(&tso_msgs[msgs], &addr, t, peer, iov, size_t(2 * count), tso_ctrl[msgs], count > 1 ? uint16_t(stride) : 0);
    msgs++;
  }
  send_all(tx[sock].fd, tso_msgs, msgs, tso_packets, tso_bytes);
}

void Worker::send_icmp_error(const uint8_t* pkt, size_t len, uint8_t code, uint16_t mtu) {
  timespec now;
  // CLOCK_MONOTONIC_COARSE: a vDSO read, and jiffy resolution is plenty for a per-second budget.
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  if (!icmp_budget.take(uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec))) {
    counters.add(kInsideIcmpRateLimited);
    return;
  }
  memset(icmp, 0, kVnetLen);  // a plain vnet header: no GSO, checksums complete
  uint8_t* out = vnet ? icmp + kVnetLen : icmp;
  const size_t n = write_icmp_unreachable(out, pkt, len, tun_addr, code, mtu);
  if (write(tun_fd, icmp, n + (vnet ? kVnetLen : 0)) > 0) counters.add(kInsideIcmpUnreachable);
}

// ---------------------------------------------------------------- outside

void Worker::outside_batch(const RouteTable& t) {
  for (int i = 0; i < kBatch; i++) {
    riov[i] = {out_slab.get() + size_t(i) * kSlot, kSlot};
    msghdr& mh = rmsgs[i].msg_hdr;
    mh.msg_name = &raddr[i];
    mh.msg_namelen = sizeof(sockaddr_in);
    mh.msg_iov = &riov[i];
    mh.msg_iovlen = 1;
    mh.msg_control = rctrl[i];
    mh.msg_controllen = sizeof(rctrl[i]);
    mh.msg_flags = 0;
  }
  const int n = recvmmsg(rx_fd, rmsgs, kBatch, MSG_DONTWAIT, nullptr);
  if (n <= 0) return;  // EAGAIN, or an error poll will report again
  for (int i = 0; i < n; i++) {
    const uint8_t* buf = out_slab.get() + size_t(i) * kSlot;
    const size_t len = rmsgs[i].msg_len;
    const uint32_t src = ntohl(raddr[i].sin_addr.s_addr);
    size_t seg = len;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&rmsgs[i].msg_hdr); cm != nullptr; cm = CMSG_NXTHDR(&rmsgs[i].msg_hdr, cm)) {
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int gso_size;
        memcpy(&gso_size, CMSG_DATA(cm), sizeof(gso_size));
        if (gso_size > 0) seg = size_t(gso_size);
      }
    }
    accept_train(buf, len, seg, src, t, self, vni, counters, [this](const uint8_t* inner, size_t n) { deliver(inner, n); });
  }
  flush_coalescer();
}

void Worker::deliver(const uint8_t* inner, size_t len) {
  if (!vnet) {
    if (write(tun_fd, inner, len) == ssize_t(len)) {
      counters.add(kOutsidePackets);
      counters.add(kOutsideBytes, len);
    } else {
      counters.add(kOutsideDropTunWrite);
    }
    return;
  }
  if (!co->add(inner, len)) {
    flush_coalescer();
    co->add(inner, len);  // an empty coalescer takes any packet
  }
  co_packets++;
  co_bytes += uint32_t(len);
}

void Worker::flush_coalescer() {
  if (!vnet || co_packets == 0) return;
  const uint8_t* out = nullptr;
  const size_t n = co->flush(&out);
  if (n > 0 && write(tun_fd, out, n) == ssize_t(n)) {
    counters.add(kOutsidePackets, co_packets);
    counters.add(kOutsideBytes, co_bytes);
  } else {
    counters.add(kOutsideDropTunWrite, co_packets);
  }
  co_packets = 0;
  co_bytes = 0;
}

// ---------------------------------------------------------------- lifecycle

void* run_worker(void* w) {
  Worker* wk = static_cast<Worker*>(w);
  wk->run();
  // However it stopped (the TUN gone, a poll error), it holds no table now:
  // quiescent for good, or every table published later would stay allocated.
  wk->routes->leave(wk->index);
  wk->engine->running_.fetch_sub(1, std::memory_order_relaxed);
  return nullptr;
}

Engine::Engine(int workers) : routes_(workers) {}

std::unique_ptr<Engine> Engine::start(const EngineConfig& cfg, int* err, const char** what) {
  const int workers = int(cfg.tun_fds.size());
  std::unique_ptr<Engine> e(new (std::nothrow) Engine(workers));
  if (!e) {
    *err = ENOMEM;
    *what = "allocate the engine";
    return nullptr;
  }
  auto fail = [&](const char* step) -> std::unique_ptr<Engine> {
    *err = errno;
    *what = step;
    return nullptr;  // e's destructor closes what was opened
  };
  e->set_routes(empty_route_table());
  e->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->stop_fd_ < 0) return fail("create the stop eventfd");

  if (cfg.vnet_hdr) {
    // What we can take from the TUN: unfinished checksums and IPv4 TSO (with ECN).
    const unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;
    for (int fd : cfg.tun_fds) {
      if (ioctl(fd, TUNSETOFFLOAD, offload) != 0) return fail("set TUN offloads (TUNSETOFFLOAD)");
    }
  }

  bool gso = cfg.udp_gso, gro = cfg.udp_gro;
  for (int w = 0; w < workers; w++) {
    std::unique_ptr<Worker> wk(new (std::nothrow) Worker());
    if (!wk) {
      errno = ENOMEM;
      return fail("allocate a worker");
    }
    wk->index = w;
    wk->tun_fd = cfg.tun_fds[size_t(w)];
    wk->stop_fd = e->stop_fd_;
    wk->vnet = cfg.vnet_hdr;
    wk->vni = cfg.vni;
    wk->self = cfg.self;
    wk->tun_addr = cfg.tun_addr;
    wk->routes = &e->routes_;
    wk->engine = e.get();
    wk->counters = Counters(cfg.counters + size_t(w) * kCounterCount);
    int e2 = 0;
    wk->rx_fd = udp_open(cfg.bind_ip, cfg.port, true, &e2);
    if (wk->rx_fd < 0) {
      errno = e2;
      e->workers_.push_back(std::move(wk));
      return fail("bind the UDP port");
    }
    for (SendQueue& q : wk->tx) {
      q.fd = udp_open(cfg.bind_ip, 0, false, &e2);
      if (q.fd < 0) {
        errno = e2;
        e->workers_.push_back(std::move(wk));
        return fail("open a sending UDP socket");
      }
    }
    // Without a probe socket the path MTU is unknown and no limit applies.
    wk->probe_fd = udp_open(cfg.bind_ip, 0, false, &e2);
    wk->pmtu.reset(new (std::nothrow) PathMtuCache(wk->probe_fd));
    if (gro && !udp_enable_gro(wk->rx_fd)) gro = false;
    if (gso && !udp_gso_supported(wk->tx[0].fd)) gso = false;
    wk->in_slab.reset(new (std::nothrow) uint8_t[kBatch * kSlot]);
    wk->out_slab.reset(new (std::nothrow) uint8_t[kBatch * kSlot]);
    wk->co_buf.reset(new (std::nothrow) uint8_t[kCoalescerBufLen]);
    if (wk->co_buf) wk->co.reset(new (std::nothrow) TcpCoalescer(wk->co_buf.get(), kCoalescerBufLen));
    if (!wk->in_slab || !wk->out_slab || !wk->co || !wk->pmtu) {
      errno = ENOMEM;
      e->workers_.push_back(std::move(wk));
      return fail("allocate worker buffers");
    }
    e->workers_.push_back(std::move(wk));
  }
  e->udp_gso_ = gso;
  e->udp_gro_ = gro;
  for (auto& wk : e->workers_) {
    wk->gso = gso;
    if (!gro) {
      const int zero = 0;
      (void)setsockopt(wk->rx_fd, IPPROTO_UDP, UDP_GRO, &zero, sizeof(zero));  // all workers alike
    }
  }
  e->threads_.reserve(e->workers_.size());
  for (auto& wk : e->workers_) {
    pthread_t th;
    e->running_.fetch_add(1, std::memory_order_relaxed);
    const int rc = pthread_create(&th, nullptr, run_worker, wk.get());
    if (rc != 0) {
      e->running_.fetch_sub(1, std::memory_order_relaxed);
      e->stop();
      errno = rc;
      return fail("start a worker thread");
    }
    e->threads_.push_back(th);
  }
  return e;
}

void Engine::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    // The eventfd stays readable, so every worker's poll sees it.
    while (write(stop_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
  for (pthread_t th : threads_) pthread_join(th, nullptr);
  threads_.clear();
}

Engine::~Engine() {
  stop();
  workers_.clear();  // closes the sockets
  if (stop_fd_ >= 0) close(stop_fd_);
}

}  // namespace weft
