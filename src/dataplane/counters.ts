// The dataplane's counters: one fixed layout shared by every engine, so the
// control plane reads them the same way whichever engine runs.

/** Counter names in layout order; an engine stores counter i at index i. */
export const COUNTER_NAMES = [
  // inside: TUN -> encapsulate -> UDP
  'inside_packets',
  'inside_bytes',
  'inside_drop_malformed',
  'inside_drop_not_ipv4',
  'inside_drop_no_route',
  'inside_drop_send_error',
  /** Longer than the path to its node allows, with DF set: answered with ICMP fragmentation-needed (native engine). */
  'inside_drop_too_big',
  /** Reads the TUN refused (a packet longer than the read slot: the device's MTU raised under weft, say). */
  'inside_drop_read_error',
  'inside_icmp_unreachable',
  /** ICMP errors not sent: over the budget (icmp_budget.ts). */
  'inside_icmp_rate_limited',
  // outside: UDP -> check -> decapsulate -> TUN
  'outside_packets',
  'outside_bytes',
  'outside_drop_short',
  'outside_drop_bad_flags',
  'outside_drop_vni',
  'outside_drop_next_proto',
  'outside_drop_unknown_sender',
  'outside_drop_spoofed_source',
  'outside_drop_not_local',
  'outside_drop_ttl',
  'outside_drop_malformed',
  'outside_drop_tun_write',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type CounterSnapshot = Record<CounterName, number>;

/** Index of each counter, for the hot path (no string lookups per packet). */
export const C = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i])) as { readonly [K in CounterName]: number };

export function snapshot(values: ArrayLike<number>): CounterSnapshot {
  const out = {} as CounterSnapshot;
  COUNTER_NAMES.forEach((n, i) => {
    out[n] = values[i]!;
  });
  return out;
}

/** Sum of every drop counter of one direction ("inside" or "outside"). */
export function totalDrops(s: CounterSnapshot, dir: 'inside' | 'outside'): number {
  let sum = 0;
  for (const n of COUNTER_NAMES) if (n.startsWith(`${dir}_drop_`)) sum += s[n];
  return sum;
}
