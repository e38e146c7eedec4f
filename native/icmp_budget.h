// How many ICMP errors a worker may send back into the TUN: a burst, then a
// steady rate (src/dataplane/icmp_budget.ts is the same rule, and says why).
#ifndef WEFT_ICMP_BUDGET_H_
#define WEFT_ICMP_BUDGET_H_

#include <stdint.h>

namespace weft {

inline constexpr double kIcmpBurst = 50;
inline constexpr double kIcmpPerSecond = 100;

class IcmpBudget {
 public:
  // True (and one error spent) when an error may be sent at now_ns (CLOCK_MONOTONIC).
  bool take(uint64_t now_ns) {
    if (have_last_ && now_ns > last_ns_) {
      tokens_ += double(now_ns - last_ns_) * kIcmpPerSecond / 1e9;
      if (tokens_ > kIcmpBurst) tokens_ = kIcmpBurst;
    }
    last_ns_ = now_ns;
    have_last_ = true;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double tokens_ = kIcmpBurst;
  uint64_t last_ns_ = 0;
  bool have_last_ = false;
};

}  // namespace weft

#endif  // WEFT_ICMP_BUDGET_H_
