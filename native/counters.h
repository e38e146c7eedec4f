// The dataplane counters: the same names in the same order as
// src/dataplane/counters.ts (COUNTER_NAMES), which a test checks. Each
// worker thread owns one block of kCounterCount uint64 slots inside a
// JS-owned BigUint64Array; only that thread writes it, with relaxed atomic
// stores, and JS reads it whenever it likes (a value may be stale, never torn).
#ifndef WEFT_COUNTERS_H_
#define WEFT_COUNTERS_H_

#include <stdint.h>

namespace weft {

enum Counter : int {
  kInsidePackets,
  kInsideBytes,
  kInsideDropMalformed,
  kInsideDropNotIpv4,
  kInsideDropNoRoute,
  kInsideDropSendError,
  kInsideDropTooBig,
  kInsideDropReadError,
  kInsideIcmpUnreachable,
  kInsideIcmpRateLimited,
  kInsideDropPlaintext,
  kInsideDropNoSession,
  kOutsidePackets,
  kOutsideBytes,
  kOutsideDropShort,
  kOutsideDropBadFlags,
  kOutsideDropVni,
  kOutsideDropNextProto,
  kOutsideDropUnknownSender,
  kOutsideDropSpoofedSource,
  kOutsideDropNotLocal,
  kOutsideDropTtl,
  kOutsideDropMalformed,
  kOutsideDropTunWrite,
  kOutsideDropPlaintext,
  kOutsideDropWgMalformed,
  kOutsideDropWgMac1,
  kOutsideDropWgCookie,
  kOutsideDropWgUnknownKey,
  kOutsideDropWgAuth,
  kOutsideDropWgReplay,
  kOutsideDropWgUnknownIndex,
  kOutsideDropWgExpired,
  kOutsideDropWgQueueFull,
  kWgInitiationsSent,
  kWgHandshakesCompleted,
  kCounterCount
};

inline constexpr const char* kCounterNames[kCounterCount] = {
    "inside_packets",
    "inside_bytes",
    "inside_drop_malformed",
    "inside_drop_not_ipv4",
    "inside_drop_no_route",
    "inside_drop_send_error",
    "inside_drop_too_big",
    "inside_drop_read_error",
    "inside_icmp_unreachable",
    "inside_icmp_rate_limited",
    "inside_drop_plaintext",
    "inside_drop_no_session",
    "outside_packets",
    "outside_bytes",
    "outside_drop_short",
    "outside_drop_bad_flags",
    "outside_drop_vni",
    "outside_drop_next_proto",
    "outside_drop_unknown_sender",
    "outside_drop_spoofed_source",
    "outside_drop_not_local",
    "outside_drop_ttl",
    "outside_drop_malformed",
    "outside_drop_tun_write",
    "outside_drop_plaintext",
    "outside_drop_wg_malformed",
    "outside_drop_wg_mac1",
    "outside_drop_wg_cookie",
    "outside_drop_wg_unknown_key",
    "outside_drop_wg_auth",
    "outside_drop_wg_replay",
    "outside_drop_wg_unknown_index",
    "outside_drop_wg_expired",
    "outside_drop_wg_queue_full",
    "wg_initiations_sent",
    "wg_handshakes_completed",
};

// One thread's counter block. Single writer: load + relaxed store is enough.
class Counters {
 public:
  explicit Counters(uint64_t* slots) : slots_(slots) {}
  void add(Counter c, uint64_t n = 1) {
    __atomic_store_n(&slots_[c], __atomic_load_n(&slots_[c], __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
  }

 private:
  uint64_t* slots_;
};

}  // namespace weft

#endif  // WEFT_COUNTERS_H_
