// The native engine: one worker thread per TUN queue, each owning that
// queue's fd (borrowed from JS until stop() returns), a receiving UDP socket
// in the cluster port's SO_REUSEPORT group, a few sending sockets and, once
// encryption is on, a socket in the WireGuard port's group (it receives and
// sends). JS pushes whole route tables (set_routes, WireGuard sessions
// included), installs session keys (wg_install: one call per handshake) and
// reads counters from memory it owns; handshake messages the workers
// pre-checked wait in a bounded queue that JS takes as a batch when told
// (the notify callback, at most once until taken). Nothing crosses per packet.
//
//   worker loop:  poll(tun, udp, wireguard, wake, stop)
//                   -> inside batch     (inside_batch.cc; WireGuard peers: wg_batch.cc)
//                   -> outside batch    (outside_batch.cc)
//                   -> WireGuard batch  (wg_batch.cc, deciding with wg_outside.h)
//                   -> wake: the WireGuard socket opened, or new sessions: send what waited
#ifndef WEFT_DATAPLANE_H_
#define WEFT_DATAPLANE_H_

#include <stdint.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <pthread.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "outside.h"
#include "routes.h"
#include "wg_transport.h"

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

// Handshake messages waiting for JS at most (as the kernel's queue); past that, dropped and counted.
inline constexpr size_t kHandshakeQueue = 4096;

// A pre-checked handshake message for JS: its source and bytes.
struct HandshakeEntry {
  uint32_t src;
  uint16_t len;
  uint8_t msg[kWgInitiationLen];  // the largest handshake message
};

class Engine {
 public:
  // Opens the sockets, sets the TUN offloads and starts the workers. On
  // failure returns nullptr with *err (errno) and *what (which step) set,
  // having closed whatever it opened.
  static std::unique_ptr<Engine> start(const EngineConfig& cfg, int* err, const char** what);
  ~Engine();

  // Publishes a table and wakes the workers (staged packets may have a session now).
  void set_routes(std::unique_ptr<RouteTable> table);
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

  // ---- WireGuard, control thread only (JS's calls).

  // Opens each worker's socket in `port`'s SO_REUSEPORT group (GRO on,
  // bound to the underlay device) and wakes the workers to poll it. 0, or the
  // errno with *what naming the step; idempotent once it worked.
  int wg_enable(uint16_t port, const char** what);
  // A session's keys, from a handshake JS completed; false when OpenSSL or memory refused.
  bool wg_install(uint32_t local_index, uint32_t remote_index, const uint8_t* send_key, const uint8_t* recv_key, bool initiator,
                  uint32_t peer_ip, uint16_t peer_port);
  void wg_retire(uint32_t local_index) { keypairs_.erase(local_index); }
  // The installed keypair of `local_index`, for set_routes' tables; nullptr when not installed.
  std::shared_ptr<Keypair> wg_keypair(uint32_t local_index) const;
  // Sends a handshake message from the WireGuard port: 0, or the errno.
  int wg_send(uint32_t ip, uint16_t port, const uint8_t* msg, size_t len);
  // Seals and sends an empty transport message on keypair `local_index`: 0, or the errno (ENOENT: no such keypair).
  int wg_keepalive(uint32_t local_index);
  // Moves the queued handshake messages into out (at most out_cap), and the
  // sources of the peers a packet found no session for into want (at most
  // want_cap, *wants set); re-arms the notification first. Returns the count of messages.
  size_t wg_take(HandshakeEntry* out, size_t out_cap, uint32_t* want, size_t want_cap, size_t* wants);
  // Per installed keypair, 7 numbers: local index, ms since data sent, data received,
  // anything sent, anything received (-1: never), confirmed (0/1), send counter. Returns how many keypairs (at most cap).
  size_t wg_activity(double* out, size_t cap);

  // ---- WireGuard, workers.

  // Queues `n` pre-checked handshake messages for JS (one lock per batch); those past kHandshakeQueue are counted as dropped.
  size_t wg_queue(const HandshakeEntry* entries, size_t n);
  // Tells JS there is something to take, once until it took it.
  void wg_notify();
  // The callback the notification runs on a worker thread (it must only schedule work on JS's thread).
  void set_notify(void (*fn)(void*), void* arg) {
    notify_fn_ = fn;
    notify_arg_ = arg;
  }

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
  void wake_workers();
  RouteHolder routes_;
  int stop_fd_ = -1;
  uint16_t wg_port_ = 0;
  std::unordered_map<uint32_t, std::shared_ptr<Keypair>> keypairs_;
  // The handshake queue, a ring of kHandshakeQueue entries (allocated by
  // wg_enable) under hs_mu_: workers push a batch, JS takes a batch.
  std::mutex hs_mu_;
  std::unique_ptr<HandshakeEntry[]> hs_ring_;
  size_t hs_head_ = 0, hs_count_ = 0;
  std::atomic<bool> notify_pending_{false};
  void (*notify_fn_)(void*) = nullptr;
  void* notify_arg_ = nullptr;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<pthread_t> threads_;
  bool udp_gso_ = false;
  bool bound_to_device_ = false;
  bool udp_gro_ = false;
  bool stopped_ = false;
  uint32_t bind_ip_ = 0;  // for the WireGuard sockets, opened later
  std::string bind_dev_;
  std::atomic<int> running_{0};

  friend void* run_worker(void* w);
};

}  // namespace weft

#endif  // WEFT_DATAPLANE_H_
