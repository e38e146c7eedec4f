// The native engine: one worker thread per TUN queue, each owning that
// queue's fd (borrowed from JS until stop() returns), a receiving UDP socket
// in the cluster port's SO_REUSEPORT group and a few sending sockets. JS
// pushes whole route tables (set_routes) and reads counters from memory it
// owns; nothing crosses per packet.
//
//   worker loop:  poll(tun, udp, stop) -> inside batch  (dataplane.cc, deciding with inside.h)
//                                      -> outside batch (dataplane.cc, deciding with outside.h)
#ifndef WEFT_DATAPLANE_H_
#define WEFT_DATAPLANE_H_

#include <stdint.h>

#include <atomic>
#include <memory>
#include <pthread.h>

#include <string>
#include <vector>

#include "outside.h"
#include "routes.h"

namespace weft {

// Segments of one TSO super-packet a worker splits; the TUN's gso_max_segs
// is capped at it (src/constants.ts NATIVE_MAX_TSO_SEGMENTS, held equal by
// the differential test).
inline constexpr int kMaxSegs = 64;

struct EngineConfig {
  std::vector<int> tun_fds;  // one per queue; opened with IFF_VNET_HDR iff vnet_hdr
  bool vnet_hdr = false;     // TUN offloads: TSO super-packets in, GSO super-packets out
  bool udp_gso = true;       // wanted; used only where the kernel has it
  bool udp_gro = true;
  uint32_t bind_ip = 0;
  // The underlay interface the sending sockets are bound to (SO_BINDTODEVICE),
  // so no encapsulated packet can be routed into the TUN; empty: not bound.
  std::string bind_dev;
  uint16_t port = 4790;
  uint32_t vni = 1;
  SelfSubnet self{0, 0};
  uint32_t tun_addr = 0;
  uint64_t* counters = nullptr;  // tun_fds.size() blocks of kCounterCount, written by the workers
};

struct Worker;

class Engine {
 public:
  // Opens the sockets, sets the TUN offloads and starts the workers. On
  // failure returns nullptr with *err (errno) and *what (which step) set,
  // having closed whatever it opened.
  static std::unique_ptr<Engine> start(const EngineConfig& cfg, int* err, const char** what);
  ~Engine();

  void set_routes(std::unique_ptr<RouteTable> table) { routes_.publish(std::move(table)); }
  // Stops and joins every worker; afterwards no fd is touched. Idempotent.
  void stop();
  // Workers still running: one that met an error it cannot go on from (the
  // TUN device deleted under it) has ended.
  int workers_running() const { return running_.load(std::memory_order_relaxed); }
  size_t retired_tables() { return routes_.retired(); }
  bool udp_gso() const { return udp_gso_; }
  // True when the sending sockets are bound to bind_dev (the kernel may refuse without CAP_NET_RAW before 5.7).
  bool bound_to_device() const { return bound_to_device_; }
  bool udp_gro() const { return udp_gro_; }

 private:
  explicit Engine(int workers);
  // The steps of start(). new_worker: a worker for TUN queue w with its
  // fields and buffers, or nullptr (ENOMEM) with *step set. add_workers: one
  // worker per queue with its sockets open, and the UDP offloads every one
  // of them has. start_threads: a thread per worker. Each returns 0 or an
  // errno (with *step naming what failed); the destructor undoes the rest.
  std::unique_ptr<Worker> new_worker(const EngineConfig& cfg, int w, const char** step);
  int add_workers(const EngineConfig& cfg, const char** step);
  int start_threads();
  RouteHolder routes_;
  int stop_fd_ = -1;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<pthread_t> threads_;
  bool udp_gso_ = false;
  bool bound_to_device_ = false;
  bool udp_gro_ = false;
  bool stopped_ = false;
  std::atomic<int> running_{0};

  friend void* run_worker(void* w);
};

}  // namespace weft

#endif  // WEFT_DATAPLANE_H_
