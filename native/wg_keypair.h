// One WireGuard session's keys as the native workers use them (a keypair
// in wireguard-go's words), and the table that finds them: what the TS
// sessions (src/wireguard/sessions.ts) install after each handshake and
// retire after 180 s. A keypair's keys and contexts never change; what
// moves is atomic (the send counter, key confirmation, the activity times
// JS reads for its timers) or under its own lock (the replay window, held
// for its check alone). Keypairs are shared by the route tables that
// list them (shared_ptr) and freed with the last of those, on the control
// thread, after every worker has left it (routes.h).
#ifndef WEFT_WG_KEYPAIR_H_
#define WEFT_WG_KEYPAIR_H_

#include <stdint.h>

#include <atomic>
#include <memory>
#include <vector>

#include "open_table.h"
#include "wg_crypto.h"
#include "wg_replay.h"

namespace weft {

// Whitepaper section 6: counters at or past this are neither sent nor accepted.
constexpr uint64_t kRejectAfterMessages = UINT64_MAX - (uint64_t(1) << 13);
// A session older than this is never used, sending or receiving.
constexpr uint64_t kRejectAfterTimeNs = 180ull * 1000000000ull;

// Laid out by who writes what: the first cache line is written once (at
// make_keypair, and `confirmed` at most once more) and read by every worker
// per packet; the sending workers write the second, the receiving ones the
// third. Activity times are stamped only when they move (stamp).
struct Keypair {
  uint32_t local_index = 0;   // ours: the receiver index of what the peer sends on it
  uint32_t remote_index = 0;  // the peer's: the receiver index of what we send
  uint32_t peer_ip = 0;       // the peer's underlay address: where keepalives go, and the only source taken
  uint16_t peer_port = 0;
  uint64_t created_ns = 0;    // coarse monotonic (coarse_now_ns)
  // Sealing and opening contexts, one per worker and one for the control thread (keepalives), the last.
  std::unique_ptr<Aead[]> seal;
  std::unique_ptr<Aead[]> open;
  int contexts = 0;
  // Key confirmation: an initiator's keypair is confirmed; a responder's once a transport message authenticated on it.
  std::atomic<bool> confirmed{false};
  // The senders' line. Activity, here and below, in coarse monotonic ns (0: never): data packets, and any
  // authenticated message (keepalives too).
  alignas(64) std::atomic<uint64_t> send_counter{0};
  std::atomic<uint64_t> data_tx_ns{0}, any_tx_ns{0};
  // The receivers' lines.
  alignas(64) std::atomic<uint64_t> data_rx_ns{0}, any_rx_ns{0};
  std::atomic_flag replay_lock = ATOMIC_FLAG_INIT;
  ReplayWindow replay;

  void lock() {
    while (replay_lock.test_and_set(std::memory_order_acquire)) {
    }
  }
  void unlock() { replay_lock.clear(std::memory_order_release); }
  // Marks the key confirmed: written once, not per packet (the line it shares is read by every sender).
  void confirm() {
    if (!confirmed.load(std::memory_order_relaxed)) confirmed.store(true, std::memory_order_relaxed);
  }
  // An activity time set to now_ns, written only when it moved (the coarse clock moves once a tick, not per packet).
  static void stamp(std::atomic<uint64_t>& at, uint64_t now_ns) {
    if (at.load(std::memory_order_relaxed) != now_ns) at.store(now_ns, std::memory_order_relaxed);
  }
};

// A keypair with its contexts keyed, for `workers` workers (and the control
// thread); nullptr when OpenSSL refuses or memory runs out.
std::shared_ptr<Keypair> make_keypair(uint32_t local_index, uint32_t remote_index, const uint8_t* send_key, const uint8_t* recv_key,
                                      bool initiator, uint32_t peer_ip, uint16_t peer_port, int workers, uint64_t now_ns);

// The route table's WireGuard part: every keypair by our index (an open
// table, open_table.h, sized once by reserve), and per route-table peer the
// keypair to send on when confirmed (next) and the current one.
struct WgSessions {
  std::vector<std::shared_ptr<Keypair>> owned;
  std::vector<Keypair*> by_index;
  std::vector<Keypair*> peer_next, peer_current;

  Keypair* find(uint32_t local_index) const {
    if (by_index.empty() || local_index == 0) return nullptr;
    return by_index[open_table_probe(local_index, by_index.size(), [this](size_t i) { return local_index_at(i); })];
  }
  // The keypair to send to peer p on at now_ns: next once confirmed, else current; never one past Reject-After-Time.
  Keypair* sending(int32_t p, uint64_t now_ns) const {
    if (size_t(p) >= peer_current.size()) return nullptr;
    Keypair* k = peer_next[size_t(p)];
    if (k == nullptr || !k->confirmed.load(std::memory_order_relaxed)) k = peer_current[size_t(p)];
    return k != nullptr && now_ns - k->created_ns < kRejectAfterTimeNs ? k : nullptr;
  }
  // Room for `n` keypairs (a table holds at most 3 per peer), before any index().
  void reserve(size_t n) { by_index.assign(open_table_size(n), nullptr); }
  // Adds `k`, whose index is not in the table yet; false when that would take more room than reserved.
  bool index(const std::shared_ptr<Keypair>& k) {
    if ((owned.size() + 1) * 2 > by_index.size()) return false;
    owned.push_back(k);
    by_index[open_table_probe(k->local_index, by_index.size(), [this](size_t i) { return local_index_at(i); })] = k.get();
    return true;
  }

 private:
  uint32_t local_index_at(size_t i) const { return by_index[i] == nullptr ? 0 : by_index[i]->local_index; }
};

}  // namespace weft

#endif  // WEFT_WG_KEYPAIR_H_
