// The engine's route table and how a new one replaces the old under running
// workers: the control plane builds a whole RouteTable and publishes it; the
// workers read the current pointer once per batch without locking; an old
// table is freed once every worker has been seen outside a batch since.
#ifndef WEFT_ROUTES_H_
#define WEFT_ROUTES_H_

#include <stdint.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "wg_keypair.h"

namespace weft {

constexpr int32_t kNoPeer = -1;

// Peer flag bits (src/constants.ts, PEER_*): what a peer's lease says it accepts.
constexpr uint8_t kPeerTcpCsumPartial = 1;  // inner TCP checksums may be left partial, both ways
constexpr uint8_t kPeerWireguard = 2;       // this node and the peer both publish keys: WireGuard only, both ways
constexpr uint8_t kPeerHasKey = 4;          // the peer's lease publishes a WireGuard key (its handshakes are taken)

// Immutable once published. Same semantics as src/routes/route_table.ts.
struct RouteTable {
  uint32_t net_base = 0;
  uint32_t net_mask = 0;
  int shift = 32;
  std::vector<int32_t> slots;        // subnet slot -> peer index or kNoPeer
  std::vector<uint32_t> peer_ip;     // underlay address, host order
  std::vector<uint16_t> peer_port;
  std::vector<uint16_t> peer_wg_port;  // its WireGuard port (0: it publishes no key)
  std::vector<uint8_t> peer_flags;   // kPeer* bits
  bool plaintext_refused = false;    // wireguard-only: no VXLAN-GPE with anyone
  // Open-addressed set of peer IPs (power-of-two size, 0 = empty: 0.0.0.0 is never a peer),
  // and beside it the flags every peer at that IP shares.
  std::vector<uint32_t> sender_ips;
  std::vector<uint8_t> sender_flags;

  // WireGuard (empty while this node does not encrypt): the sessions, the
  // key mac1 is checked with (all zero: none; each worker re-keys its Mac1
  // when the key changes), the padding limit (the TUN's MTU), and per peer
  // a flag a worker raises when a packet found no session to send on (JS
  // takes it: engine_binding.cc).
  WgSessions wg;
  uint8_t mac1_key[32] = {};
  uint16_t pad_limit = 0;
  std::unique_ptr<std::atomic<uint8_t>[]> want_session;

  int32_t lookup(uint32_t ip) const {
    if ((ip & net_mask) != net_base) return kNoPeer;
    return slots[(ip - net_base) >> shift];
  }
  // The kPeer* bits shared by the peers at underlay address ip (0 for a stranger).
  uint8_t flags_of_sender(uint32_t ip) const {
    const int64_t s = sender_slot(ip);
    return s < 0 ? 0 : sender_flags[size_t(s)];
  }
  int64_t sender_slot(uint32_t ip) const;  // index into sender_ips, or -1
  // An address in a subnet the sender leases, or the sender's own underlay
  // address (as RouteTable.senderOwns in TypeScript).
  bool sender_owns(uint32_t outer, uint32_t inner) const {
    if (inner == outer) return true;
    const int32_t i = lookup(inner);
    return i != kNoPeer && peer_ip[size_t(i)] == outer;
  }
};

// Builds a table from the arrays JS sends (already validated by RouteTable.build
// in TS; checked again here for bounds). Returns nullptr when inconsistent.
std::unique_ptr<RouteTable> build_route_table(uint32_t net_base, int net_len, int subnet_len, const int32_t* slots,
                                              size_t slot_count, const uint32_t* peer_ip, const uint16_t* peer_port,
                                              const uint16_t* peer_wg_port, const uint8_t* peer_flags, size_t peer_count,
                                              bool plaintext_refused);

// A table that routes nothing, for the time before the first set_routes.
std::unique_ptr<RouteTable> empty_route_table();

// Publication with quiescent-state reclamation. Workers call enter() after
// waking and before reading current(), and leave() before blocking; the
// control plane calls publish() at control-plane rate.
class RouteHolder {
 public:
  explicit RouteHolder(int workers);
  ~RouteHolder();

  const RouteTable* current() const { return current_.load(std::memory_order_seq_cst); }
  void enter(int worker) { seen_[size_t(worker)].value.store(epoch_.load(std::memory_order_seq_cst), std::memory_order_seq_cst); }
  void leave(int worker) { seen_[size_t(worker)].value.store(kQuiescent, std::memory_order_seq_cst); }
  // Takes ownership; frees retired tables no worker can still hold.
  void publish(std::unique_ptr<RouteTable> table);
  // Replaced tables not yet freed (some worker may still read them).
  size_t retired() {
    std::lock_guard<std::mutex> lock(mu_);
    return retired_.size();
  }

 private:
  static constexpr uint64_t kQuiescent = UINT64_MAX;
  struct alignas(64) Seen {
    std::atomic<uint64_t> value{kQuiescent};
  };
  struct Retired {
    const RouteTable* table;
    uint64_t epoch;  // freeable once every worker has seen this epoch (or is quiescent)
  };
  std::atomic<const RouteTable*> current_;
  std::atomic<uint64_t> epoch_{1};
  std::unique_ptr<Seen[]> seen_;
  int workers_;
  std::mutex mu_;  // serializes publishers, never taken by workers
  std::vector<Retired> retired_;
};

}  // namespace weft

#endif  // WEFT_ROUTES_H_
