// The Prometheus text exposition (format 0.0.4) of a DaemonStatus: a pure
// function, run once per scrape, never per packet.
//
// Label cardinality is bounded by construction: the only labels are the
// drop direction and reason (fixed by the counters' layout), the readiness
// status (three values), the ignored-lease reason (five), version/engine
// (one series), the kernel engine's device counters' direction (two
// values), the encryption mode (three) and WireGuard session states (four).
// Peers, addresses and packet sources are never labels.

import { ENCRYPTION_MODES } from '../constants.js';
import { COUNTER_NAMES, type CounterName } from '../dataplane/counters.js';
import { IGNORED_REASONS } from '../registry/lease_problem.js';
import type { DaemonStatus } from './status.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Readonly<Record<string, string>>;
type Sample = readonly [labels: Labels, value: number];

/** Each drop counter as (direction, reason), in layout order: `outside_drop_vni` is (outside, vni). */
export const DROP_REASONS: readonly { readonly counter: CounterName; readonly direction: 'inside' | 'outside'; readonly reason: string }[] = COUNTER_NAMES.flatMap((name) => {
  const m = /^(inside|outside)_drop_(.+)$/.exec(name);
  return m ? [{ counter: name, direction: m[1] as 'inside' | 'outside', reason: m[2]! }] : [];
});

export const READINESS_STATUSES = ['ready', 'degraded', 'not_ready'] as const;
export const WIREGUARD_STATES = ['up', 'connecting', 'failing', 'idle'] as const;

/** A label value with backslash, double quote and newline escaped, as the format requires. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/**
 * Renders every metric of `s`. Each metric gets its # HELP and # TYPE lines
 * once, then its samples; a metric with no known value (no lease yet: no
 * expiry) keeps its HELP and TYPE and has no sample. Counters read 0 before
 * the dataplane starts, so every series exists from the first scrape.
 */
export function renderMetrics(s: DaemonStatus): string {
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: readonly Sample[]): void => {
    out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
  };
  const one = (value: number | null): readonly Sample[] => (value === null ? [] : [[{}, value]]);
  const counter = (n: CounterName): number => s.counters?.[n] ?? 0;

  metric('weft_build_info', 'gauge', 'weftd version and dataplane engine; always 1', [[{ version: s.version, engine: s.engine.kind }, 1]]);
  metric('weft_readiness', 'gauge', 'readiness as /readyz reports it: 1 for the current status, 0 for the others', READINESS_STATUSES.map((st) => [{ status: st }, s.readiness.status === st ? 1 : 0]));

  metric('weft_inside_packets_total', 'counter', 'packets read from the TUN and sent to a node', one(counter('inside_packets')));
  metric('weft_inside_bytes_total', 'counter', 'bytes of the packets read from the TUN and sent to a node', one(counter('inside_bytes')));
  metric('weft_outside_packets_total', 'counter', 'packets received from nodes and written to the TUN', one(counter('outside_packets')));
  metric('weft_outside_bytes_total', 'counter', 'bytes of the packets received from nodes and written to the TUN', one(counter('outside_bytes')));
  metric('weft_inside_icmp_unreachable_total', 'counter', 'ICMP net-unreachable messages written back into the TUN', one(counter('inside_icmp_unreachable')));
  metric('weft_inside_icmp_rate_limited_total', 'counter', 'ICMP errors not sent: over the budget of 50 at once, then 100 per second per worker', one(counter('inside_icmp_rate_limited')));
  metric(
    'weft_drops_total',
    'counter',
    'packets dropped, by direction (inside: TUN to UDP, outside: UDP to TUN) and reason',
    DROP_REASONS.map((d) => [{ direction: d.direction, reason: d.reason }, counter(d.counter)]),
  );

  const enc = s.encryption;
  metric('weft_encryption_mode', 'gauge', 'the encryption the network config asks for: 1 for the current mode, 0 for the others (absent before the key is loaded)', enc ? ENCRYPTION_MODES.map((m) => [{ mode: m }, enc.mode === m ? 1 : 0]) : []);
  metric('weft_encryption_published', 'gauge', '1 when this node\'s lease publishes its WireGuard key (its mode is applied), else 0', one(enc ? Number(enc.published) : null));
  metric(
    'weft_wireguard_peers',
    'gauge',
    'nodes that publish a WireGuard key, by session state: up (a session to send on), connecting, failing (the last handshake gave up), idle',
    enc ? WIREGUARD_STATES.map((st) => [{ state: st }, enc.peers.filter((p) => p.state === st).length]) : [],
  );
  metric('weft_wireguard_initiations_total', 'counter', 'WireGuard handshake initiations sent', one(counter('wg_initiations_sent')));
  metric('weft_wireguard_handshakes_total', 'counter', 'WireGuard handshakes completed, as initiator or responder', one(counter('wg_handshakes_completed')));
  metric('weft_peers', 'gauge', 'other nodes in the lease table', one(s.peers.length));
  metric('weft_lease_expires_in_seconds', 'gauge', 'seconds until this node\'s subnet lease expires unless renewed (absent before a lease is held)', one(s.leaseExpiresInS));
  metric('weft_etcd_connected', 'gauge', '1 when etcd answered the last request or probe, else 0', one(s.etcd.connected ? 1 : 0));
  metric('weft_etcd_last_contact_seconds', 'gauge', 'seconds since etcd last answered (absent before it ever did)', one(s.etcd.lastContactAgoS));
  metric('weft_lease_renewals_total', 'counter', 'successful renewals of the subnet lease', one(s.renewals));
  metric('weft_lease_reacquisitions_total', 'counter', 'times the subnet lease was lost and acquired again', one(s.reacquisitions));
  metric('weft_watch_resyncs_total', 'counter', 'full re-lists of the leases started (periodic, or after a broken watch)', one(s.watchResyncs));
  metric('weft_subnet_losses_total', 'counter', 'times a subnet this node held was taken by another node (weftd then takes another, or waits for one)', one(s.subnetLosses));
  metric(
    'weft_ignored_leases',
    'gauge',
    'leases left out of the route table, by reason: invalid (value does not parse), outside_network, subnet_length, public_ip_in_network, own_address',
    IGNORED_REASONS.map((r) => [{ reason: r }, s.ignoredLeasesByReason[r]]),
  );
  if (s.engine.kind === 'kernel') {
    // The kernel engine's device and routes; its packets, bytes and filter drops are the counters above.
    const d = s.engine.details;
    const directions = (inside: number | undefined, outside: number | undefined): readonly Sample[] => [
      [{ direction: 'inside' }, inside ?? 0],
      [{ direction: 'outside' }, outside ?? 0],
    ];
    metric('weft_kernel_routes', 'gauge', 'encap routes the kernel engine installed, one per peer', one(d.routes ?? 0));
    metric('weft_kernel_unroutable_peers', 'gauge', 'peers the kernel engine cannot route: their lease names another port than the device\'s', one(d.unroutablePeers ?? 0));
    metric('weft_kernel_device_repairs_total', 'counter', 'times the kernel engine\'s device was found deleted or down and made again', one(d.deviceRepairs ?? 0));
    metric('weft_kernel_device_errors_total', 'counter', 'the device\'s own error counts: inside its transmit errors (no route to a peer), outside its receive errors', directions(d.deviceTxErrors, d.deviceRxErrors));
    metric('weft_kernel_device_dropped_total', 'counter', 'the device\'s own drop counts: inside on transmit, outside on receive', directions(d.deviceTxDropped, d.deviceRxDropped));
  }
  return `${out.join('\n')}\n`;
}
