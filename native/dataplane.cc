// The native engine's loop and lifecycle: see dataplane.h for the contract,
// worker.h for a worker's state, inside_batch.cc and outside_batch.cc for
// the two directions.
#include "dataplane.h"

#include <errno.h>
#include <linux/if_tun.h>
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
    if (!cfg.bind_dev.empty()) {
      bool bound = true;
      for (const SendQueue& q : wk->tx) bound = udp_bind_device(q.fd, cfg.bind_dev.c_str()) && bound;
      if (wk->probe_fd >= 0) bound = udp_bind_device(wk->probe_fd, cfg.bind_dev.c_str()) && bound;
      e->bound_to_device_ = (w == 0 || e->bound_to_device_) && bound;
    }
    wk->pmtu = PathMtuCache(wk->probe_fd);
    if (gro && !udp_enable_gro(wk->rx_fd)) gro = false;
    if (gso && !udp_gso_supported(wk->tx[0].fd)) gso = false;
    wk->in_slab.reset(new (std::nothrow) uint8_t[kBatch * kSlot]);
    wk->out_slab.reset(new (std::nothrow) uint8_t[kBatch * kSlot]);
    if (!wk->in_slab || !wk->out_slab) {
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
