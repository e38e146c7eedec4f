// The native engine's loop and lifecycle: see dataplane.h for the contract,
// worker.h for a worker's state, inside_batch.cc and outside_batch.cc for
// the two directions.
#include "dataplane.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <new>

#include "udp_linux.h"
#include "worker.h"

namespace weft {

// ---------------------------------------------------------------- the loop

void Worker::run() {
  // The WireGuard socket's slot stays -1 (which poll skips) until encryption
  // opens it: wg_enable stores wg_fd, then wakes the worker, which takes it.
  pollfd fds[5] = {{tun_fd, POLLIN, 0}, {rx_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}, {-1, POLLIN, 0}};
  for (;;) {
    routes->leave(index);
    const int r = poll(fds, 5, -1);
    routes->enter(index);
    if (r < 0) {
      if (errno == EINTR) continue;
      return;  // EFAULT/EINVAL/ENOMEM: nothing sane left to do on this worker
    }
    if (fds[2].revents != 0) return;
    // A deleted TUN device reports POLLERR/POLLHUP forever: stop rather than spin.
    if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return;
    const RouteTable& t = *routes->current();
    if ((fds[3].revents & POLLIN) != 0) {
      uint64_t v;
      (void)!read(wake_fd, &v, sizeof(v));
      fds[4].fd = wg_tx.fd = wg_fd.load(std::memory_order_acquire);
      if (staged_n > 0) flush_staged(t, coarse_now_ns());
    }
    if ((fds[0].revents & POLLIN) != 0) inside_batch(t);
    if ((fds[1].revents & POLLIN) != 0) outside_batch(t);
    if (fds[4].fd >= 0 && (fds[4].revents & POLLIN) != 0) wireguard_batch(t, fds[4].fd);
  }
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

namespace {

// Asks every TUN queue for what the workers take: unfinished checksums and
// IPv4 TSO (with ECN). 0, or the errno of the refused ioctl.
int set_tun_offloads(const std::vector<int>& tun_fds) {
  const unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;
  for (int fd : tun_fds) {
    if (ioctl(fd, TUNSETOFFLOAD, offload) != 0) return errno;
  }
  return 0;
}

// Opens a worker's sockets: the receiving one in the cluster port's
// SO_REUSEPORT group, the sending ones, and the probe socket. Binds the
// sending and probe sockets to cfg.bind_dev when set; *bound says whether
// every bind took. 0, or the errno with *step naming what failed; the
// worker's destructor closes whatever was opened.
int open_sockets(Worker* wk, const EngineConfig& cfg, bool* bound, const char** step) {
  int err = 0;
  wk->rx_fd = udp_open(cfg.bind_ip, cfg.port, UdpRole::kReceiver, &err);
  if (wk->rx_fd < 0) {
    *step = "bind the UDP port";
    return err;
  }
  for (SendQueue& q : wk->tx) {
    q.fd = udp_open(cfg.bind_ip, 0, UdpRole::kSender, &err);
    if (q.fd < 0) {
      *step = "open a sending UDP socket";
      return err;
    }
  }
  // Without a probe socket the path MTU is unknown and no limit applies.
  wk->probe_fd = udp_open(cfg.bind_ip, 0, UdpRole::kSender, &err);
  *bound = true;
  if (!cfg.bind_dev.empty()) {
    for (const SendQueue& q : wk->tx) *bound = udp_bind_device(q.fd, cfg.bind_dev.c_str()) && *bound;
    if (wk->probe_fd >= 0) *bound = udp_bind_device(wk->probe_fd, cfg.bind_dev.c_str()) && *bound;
  }
  wk->pmtu = PathMtuCache(wk->probe_fd);
  return 0;
}

}  // namespace

std::unique_ptr<Engine> Engine::start(const EngineConfig& cfg, int* err, const char** what) {
  std::unique_ptr<Engine> e(new (std::nothrow) Engine(int(cfg.tun_fds.size())));
  if (!e) {
    *err = ENOMEM;
    *what = "allocate the engine";
    return nullptr;
  }
  auto fail = [&](int error, const char* step) -> std::unique_ptr<Engine> {
    *err = error;
    *what = step;
    return nullptr;  // e's destructor joins the workers started and closes what was opened
  };
  e->set_routes(empty_route_table());
  e->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->stop_fd_ < 0) return fail(errno, "create the stop eventfd");
  if (cfg.vnet_hdr) {
    const int rc = set_tun_offloads(cfg.tun_fds);
    if (rc != 0) return fail(rc, "set TUN offloads (TUNSETOFFLOAD)");
  }
  const char* step = nullptr;
  int rc = e->add_workers(cfg, &step);
  if (rc != 0) return fail(rc, step);
  rc = e->start_threads();
  if (rc != 0) return fail(rc, "start a worker thread");
  return e;
}

std::unique_ptr<Worker> Engine::new_worker(const EngineConfig& cfg, int w, const char** step) {
  std::unique_ptr<Worker> wk(new (std::nothrow) Worker());
  if (!wk) {
    *step = "allocate a worker";
    return nullptr;
  }
  wk->index = w;
  wk->tun_fd = cfg.tun_fds[size_t(w)];
  wk->stop_fd = stop_fd_;
  wk->vnet = cfg.vnet_hdr;
  wk->vni = cfg.vni;
  wk->self = cfg.self;
  wk->tun_addr = cfg.tun_addr;
  wk->routes = &routes_;
  wk->engine = this;
  wk->counters = Counters(cfg.counters + size_t(w) * kCounterCount);
  wk->in_slab.reset(new (std::nothrow) uint8_t[kBatch * kSlot]);
  wk->out_slab.reset(new (std::nothrow) uint8_t[kBatch * kSlot]);
  wk->stage_slab.reset(new (std::nothrow) uint8_t[kStaged * kSlot]);
  wk->wg_train.reset(new (std::nothrow) uint8_t[kSlot]);
  if (!wk->in_slab || !wk->out_slab || !wk->stage_slab || !wk->wg_train) {
    *step = "allocate worker buffers";
    return nullptr;
  }
  for (int i = 0; i < kStaged; i++) wk->stage_free[wk->stage_free_n++] = i;
  wk->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wk->wake_fd < 0) {
    *step = "create a worker's wake eventfd";
    return nullptr;
  }
  return wk;
}

int Engine::add_workers(const EngineConfig& cfg, const char** step) {
  bool gso = cfg.udp_gso, gro = cfg.udp_gro, all_bound = true;
  for (size_t w = 0; w < cfg.tun_fds.size(); w++) {
    std::unique_ptr<Worker> wk = new_worker(cfg, int(w), step);
    if (!wk) return ENOMEM;
    bool bound = true;
    const int rc = open_sockets(wk.get(), cfg, &bound, step);
    if (rc != 0) return rc;  // wk's destructor closes what it opened
    all_bound = all_bound && bound;
    if (gro && !udp_enable_gro(wk->rx_fd)) gro = false;
    if (gso && !udp_gso_supported(wk->tx[0].fd)) gso = false;
    workers_.push_back(std::move(wk));
  }
  bound_to_device_ = !cfg.bind_dev.empty() && all_bound;
  bind_ip_ = cfg.bind_ip;
  bind_dev_ = cfg.bind_dev;
  udp_gso_ = gso;
  udp_gro_ = gro;
  for (auto& wk : workers_) {
    wk->gso = gso;
    if (!gro) {
      // All workers alike. Unchecked: turning off an option that was turned on
      // does not fail, and where turning it on failed it is off already.
      const int zero = 0;
      (void)setsockopt(wk->rx_fd, IPPROTO_UDP, UDP_GRO, &zero, sizeof(zero));
    }
  }
  return 0;
}

int Engine::start_threads() {
  threads_.reserve(workers_.size());
  for (auto& wk : workers_) {
    pthread_t th;
    running_.fetch_add(1, std::memory_order_relaxed);
    const int rc = pthread_create(&th, nullptr, run_worker, wk.get());
    if (rc != 0) {
      running_.fetch_sub(1, std::memory_order_relaxed);
      return rc;  // the destructor stops and joins the threads started
    }
    threads_.push_back(th);
  }
  return 0;
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

void Engine::set_routes(std::unique_ptr<RouteTable> table) {
  routes_.publish(std::move(table));
  wake_workers();
}

void Engine::wake_workers() {
  const uint64_t one = 1;
  for (auto& wk : workers_) {
    while (write(wk->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

// ---------------------------------------------------------------- WireGuard

int Engine::wg_enable(uint16_t port, const char** what) {
  if (wg_port_ != 0) return 0;
  {
    std::lock_guard<std::mutex> lock(hs_mu_);
    if (!hs_ring_) hs_ring_.reset(new (std::nothrow) HandshakeEntry[kHandshakeQueue]);
    if (!hs_ring_) {
      *what = "allocate the handshake queue";
      return ENOMEM;
    }
  }
  std::vector<int> fds;
  int err = 0;
  for (size_t w = 0; w < workers_.size(); w++) {
    const int fd = udp_open(bind_ip_, port, UdpRole::kDuplex, &err);
    if (fd < 0) {
      *what = "bind the WireGuard port";
      for (int f : fds) close(f);
      return err;
    }
    fds.push_back(fd);
    if (!bind_dev_.empty()) (void)udp_bind_device(fd, bind_dev_.c_str());
    if (udp_gro_) (void)udp_enable_gro(fd);
  }
  for (size_t w = 0; w < workers_.size(); w++) workers_[w]->wg_fd.store(fds[w], std::memory_order_release);
  wg_port_ = port;
  wake_workers();
  return 0;
}

bool Engine::wg_install(uint32_t local_index, uint32_t remote_index, const uint8_t* send_key, const uint8_t* recv_key, bool initiator,
                        uint32_t peer_ip, uint16_t peer_port) {
  auto k = make_keypair(local_index, remote_index, send_key, recv_key, initiator, peer_ip, peer_port, int(workers_.size()), coarse_now_ns());
  if (!k) return false;
  keypairs_[local_index] = std::move(k);
  return true;
}

std::shared_ptr<Keypair> Engine::wg_keypair(uint32_t local_index) const {
  const auto it = keypairs_.find(local_index);
  return it == keypairs_.end() ? nullptr : it->second;
}

namespace {

int send_to(int fd, uint32_t ip, uint16_t port, const uint8_t* msg, size_t len) {
  if (fd < 0) return ENOTCONN;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(ip);
  ssize_t r;
  while ((r = sendto(fd, msg, len, 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to))) < 0 && errno == EINTR) {
  }
  return r < 0 ? errno : 0;
}

}  // namespace

int Engine::wg_send(uint32_t ip, uint16_t port, const uint8_t* msg, size_t len) {
  return send_to(workers_.empty() ? -1 : workers_[0]->wg_fd.load(), ip, port, msg, len);
}

int Engine::wg_keepalive(uint32_t local_index) {
  const auto it = keypairs_.find(local_index);
  if (it == keypairs_.end()) return ENOENT;
  Keypair& k = *it->second;
  // The control thread's own context: the last one.
  Aead& aead = k.seal[size_t(k.contexts - 1)];
  const uint64_t counter = k.send_counter.fetch_add(1, std::memory_order_relaxed);
  if (counter >= kRejectAfterMessages) return EOVERFLOW;
  // A keepalive is an empty packet sealed (no padding).
  uint8_t msg[kWgKeepaliveLen];
  const size_t n = wg_seal_in_place(msg + kWgHeaderLen, 0, aead, k.remote_index, counter, 0);
  if (n == 0) return EIO;
  k.any_tx_ns.store(coarse_now_ns(), std::memory_order_relaxed);
  return wg_send(k.peer_ip, k.peer_port, msg, n);
}

size_t Engine::wg_queue(const HandshakeEntry* entries, size_t n) {
  std::lock_guard<std::mutex> lock(hs_mu_);
  const size_t room = hs_ring_ ? kHandshakeQueue - hs_count_ : 0;
  const size_t take = n < room ? n : room;
  for (size_t i = 0; i < take; i++) hs_ring_[(hs_head_ + hs_count_ + i) % kHandshakeQueue] = entries[i];
  hs_count_ += take;
  return n - take;
}

void Engine::wg_notify() {
  if (notify_fn_ != nullptr && !notify_pending_.exchange(true, std::memory_order_acq_rel)) notify_fn_(notify_arg_);
}

size_t Engine::wg_take(HandshakeEntry* out, size_t out_cap, uint32_t* want, size_t want_cap, size_t* wants) {
  // Re-armed before taking: what a worker adds from now on is told again.
  notify_pending_.store(false, std::memory_order_release);
  size_t n;
  {
    std::lock_guard<std::mutex> lock(hs_mu_);
    n = hs_count_ < out_cap ? hs_count_ : out_cap;
    for (size_t i = 0; i < n; i++) out[i] = hs_ring_[(hs_head_ + i) % kHandshakeQueue];
    hs_head_ = (hs_head_ + n) % kHandshakeQueue;
    hs_count_ -= n;
  }
  *wants = 0;
  const RouteTable* t = routes_.current();
  for (size_t p = 0; t != nullptr && p < t->peer_ip.size() && *wants < want_cap; p++) {
    if (t->want_session[p].exchange(0, std::memory_order_relaxed) != 0) want[(*wants)++] = t->peer_ip[p];
  }
  return n;
}

size_t Engine::wg_activity(double* out, size_t cap) {
  const uint64_t now = coarse_now_ns();
  const auto ago = [now](const std::atomic<uint64_t>& at) {
    const uint64_t v = at.load(std::memory_order_relaxed);
    return v == 0 ? -1.0 : double(now - v) / 1e6;
  };
  size_t i = 0;
  for (const auto& [index, k] : keypairs_) {
    if (i == cap) break;
    double* row = out + i * 7;
    row[0] = index;
    row[1] = ago(k->data_tx_ns);
    row[2] = ago(k->data_rx_ns);
    row[3] = ago(k->any_tx_ns);
    row[4] = ago(k->any_rx_ns);
    row[5] = k->confirmed.load(std::memory_order_relaxed) ? 1 : 0;
    row[6] = double(k->send_counter.load(std::memory_order_relaxed));
    i++;
  }
  return i;
}

Engine::~Engine() {
  stop();
  workers_.clear();  // closes the sockets
  if (stop_fd_ >= 0) close(stop_fd_);
}

}  // namespace weft
