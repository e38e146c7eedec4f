// Route table construction and publication: see routes.h.
#include "routes.h"

#include <new>

#include "open_table.h"

namespace weft {

int64_t RouteTable::sender_slot(uint32_t ip) const {
  if (ip == 0 || sender_ips.empty()) return -1;
  const size_t i = open_table_probe(ip, sender_ips.size(), [this](size_t j) { return sender_ips[j]; });
  return sender_ips[i] == ip ? int64_t(i) : -1;
}

std::unique_ptr<RouteTable> build_route_table(uint32_t net_base, int net_len, int subnet_len, const int32_t* slots,
                                              size_t slot_count, const uint32_t* peer_ip, const uint16_t* peer_port,
                                              const uint16_t* peer_wg_port, const uint8_t* peer_flags, size_t peer_count,
                                              bool plaintext_refused) {
  if (net_len < 0 || net_len > 32 || subnet_len <= net_len || subnet_len > 32 || subnet_len - net_len > 24) return nullptr;
  if (slot_count != (size_t(1) << (subnet_len - net_len))) return nullptr;
  auto t = std::make_unique<RouteTable>();
  t->net_mask = net_len == 0 ? 0 : uint32_t(0xffffffffu << (32 - net_len));
  t->net_base = net_base & t->net_mask;
  t->shift = 32 - subnet_len;
  t->slots.assign(slots, slots + slot_count);
  for (int32_t s : t->slots) {
    if (s != kNoPeer && (s < 0 || size_t(s) >= peer_count)) return nullptr;
  }
  t->peer_ip.assign(peer_ip, peer_ip + peer_count);
  t->peer_port.assign(peer_port, peer_port + peer_count);
  t->peer_wg_port.assign(peer_wg_port, peer_wg_port + peer_count);
  t->peer_flags.assign(peer_flags, peer_flags + peer_count);
  t->plaintext_refused = plaintext_refused;
  t->want_session.reset(new (std::nothrow) std::atomic<uint8_t>[peer_count]());
  if (!t->want_session) return nullptr;
  const size_t size = open_table_size(peer_count);
  t->sender_ips.assign(size, 0);
  t->sender_flags.assign(size, 0);
  for (size_t p = 0; p < peer_count; p++) {
    const uint32_t ip = t->peer_ip[p];
    if (ip == 0) continue;
    const size_t i = open_table_probe(ip, size, [&t](size_t j) { return t->sender_ips[j]; });
    if (t->sender_ips[i] == ip) {
      t->sender_flags[i] &= t->peer_flags[p];  // one node's leases should agree; if not, the safe subset
    } else {
      t->sender_ips[i] = ip;
      t->sender_flags[i] = t->peer_flags[p];
    }
  }
  return t;
}

std::unique_ptr<RouteTable> empty_route_table() {
  auto t = std::make_unique<RouteTable>();
  t->net_mask = 0xffffffffu;  // only 0.0.0.0 is "in" the network, and its slot is empty
  t->net_base = 0;
  t->shift = 0;
  t->slots.assign(1, kNoPeer);
  return t;
}

RouteHolder::RouteHolder(int workers) : current_(nullptr), seen_(new Seen[size_t(workers)]), workers_(workers) {}

RouteHolder::~RouteHolder() {
  delete current_.load();
  for (const Retired& r : retired_) delete r.table;
}

void RouteHolder::publish(std::unique_ptr<RouteTable> table) {
  std::lock_guard<std::mutex> lock(mu_);
  const RouteTable* old = current_.exchange(table.release(), std::memory_order_seq_cst);
  const uint64_t epoch = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  if (old != nullptr) retired_.push_back({old, epoch});
  uint64_t oldest_seen = kQuiescent;
  for (int w = 0; w < workers_; w++) {
    const uint64_t s = seen_[size_t(w)].value.load(std::memory_order_seq_cst);
    if (s < oldest_seen) oldest_seen = s;
  }
  size_t keep = 0;
  for (const Retired& r : retired_) {
    if (r.epoch <= oldest_seen) {
      delete r.table;
    } else {
      retired_[keep++] = r;
    }
  }
  retired_.resize(keep);
}

}  // namespace weft
