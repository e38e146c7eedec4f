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
  wk->rx_fd = udp_open(cfg.bind_ip, cfg.port, true, &err);
  if (wk->rx_fd < 0) {
    *step = "bind the UDP port";
    return err;
  }
  for (SendQueue& q : wk->tx) {
    q.fd = udp_open(cfg.bind_ip, 0, false, &err);
    if (q.fd < 0) {
      *step = "open a sending UDP socket";
      return err;
    }
  }
  // Without a probe socket the path MTU is unknown and no limit applies.
  wk->probe_fd = udp_open(cfg.bind_ip, 0, false, &err);
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
  if (!wk->in_slab || !wk->out_slab) {
    *step = "allocate worker buffers";
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

Engine::~Engine() {
  stop();
  workers_.clear();  // closes the sockets
  if (stop_fd_ >= 0) close(stop_fd_);
}

}  // namespace weft
