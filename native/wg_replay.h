// The receive counter's replay window (RFC 6479, as wireguard-go and the
// kernel keep it): a ring of 128 blocks of 64 bits, accepting each counter
// once and refusing those more than kReplayWindow behind the highest seen;
// the same as src/wireguard/replay.ts (the differential test holds them
// equal). Checked only after a packet authenticated. Not thread-safe: its
// keypair's lock guards it.
#ifndef WEFT_WG_REPLAY_H_
#define WEFT_WG_REPLAY_H_

#include <stdint.h>

namespace weft {

constexpr int kReplayBlocks = 128;
constexpr uint64_t kReplayWindow = (kReplayBlocks - 1) * 64;

class ReplayWindow {
 public:
  // True, recording it, when `counter` is unseen and not behind the window
  // (the caller refused those at Reject-After-Messages already).
  bool accept(uint64_t counter) {
    const uint64_t block = counter >> 6;
    if (counter > last_) {
      const uint64_t current = last_ >> 6;
      uint64_t diff = block - current;
      if (diff > kReplayBlocks) diff = kReplayBlocks;
      for (uint64_t i = current + 1; i <= current + diff; i++) ring_[i % kReplayBlocks] = 0;
      last_ = counter;
    } else if (last_ - counter > kReplayWindow) {
      return false;
    }
    const uint64_t bit = uint64_t(1) << (counter & 63);
    uint64_t& word = ring_[block % kReplayBlocks];
    if ((word & bit) != 0) return false;
    word |= bit;
    return true;
  }

 private:
  uint64_t ring_[kReplayBlocks] = {};
  uint64_t last_ = 0;
};

}  // namespace weft

#endif  // WEFT_WG_REPLAY_H_
