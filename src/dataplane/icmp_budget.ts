// How many ICMP errors an engine may send back into the TUN: a burst, then a
// steady rate, as the kernel bounds its own (icmp_msgs_burst/_per_sec), so a
// flood toward unowned addresses, from spoofed sources or not, cannot turn
// weft into a reflector or keep a worker busy writing errors. Pure: the
// caller passes the time. native/icmp_budget.h is the same rule in C++.

export const ICMP_BURST = 50;
export const ICMP_PER_SECOND = 100;

export class IcmpBudget {
  private tokens = ICMP_BURST;
  private lastMs: number | undefined;

  /** True (and one error spent) when an error may be sent at `nowMs` (a monotonic clock). */
  take(nowMs: number): boolean {
    if (this.lastMs !== undefined && nowMs > this.lastMs) this.tokens = Math.min(ICMP_BURST, this.tokens + ((nowMs - this.lastMs) * ICMP_PER_SECOND) / 1000);
    this.lastMs = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
