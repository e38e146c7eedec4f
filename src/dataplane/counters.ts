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
  /** wireguard-only: the destination's node publishes no key, so nothing may reach it (answered with ICMP net-unreachable). */
  'inside_drop_plaintext',
  /** Waited for a WireGuard session that did not come: over the per-peer bound while the handshake ran, or the handshake gave up. */
  'inside_drop_no_session',
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
  /** VXLAN-GPE from a node the pair speaks WireGuard with, or from anyone in wireguard-only. */
  'outside_drop_plaintext',
  // outside, on the WireGuard port: the refusals of whitepaper 5.4 (src/wireguard)
  /** Not a WireGuard message: unknown type, nonzero reserved bytes, the wrong length for its type. */
  'outside_drop_wg_malformed',
  /** A handshake message whose mac1 is not made with this node's public key. */
  'outside_drop_wg_mac1',
  /** Under load: an initiation or response without a valid mac2 (answered with a cookie reply), or over a source's rate. */
  'outside_drop_wg_cookie',
  /** An initiation from a static key no lease publishes (a node not keyed yet, or whose new key is not seen yet). */
  'outside_drop_wg_unknown_key',
  /** Did not authenticate: a transport message's tag, or a handshake message's sealed fields. */
  'outside_drop_wg_auth',
  /** A transport counter seen before or behind the window; an initiation whose timestamp is not newer, or a second within 20 ms. */
  'outside_drop_wg_replay',
  /** A transport message, response or cookie reply for a receiver index this node does not hold. */
  'outside_drop_wg_unknown_index',
  /** A transport message on a session older than Reject-After-Time or past Reject-After-Messages. */
  'outside_drop_wg_expired',
  /** Handshake messages beyond what the node queues for processing. */
  'outside_drop_wg_queue_full',
  // WireGuard activity (not drops)
  'wg_initiations_sent',
  'wg_handshakes_completed',
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
