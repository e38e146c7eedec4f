// `weftctl status`: weftd's /status for a person (a summary, the peers and
// the counters as tables); fetched by observe/status_client.ts.

import { COUNTER_NAMES, totalDrops } from '../dataplane/counters.js';
import type { DaemonStatus } from '../observe/status.js';
import { formatDuration } from '../observe/status_client.js';

/** Rows of cells as aligned columns, two spaces apart. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => `${row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`).join('');
}

/** How many leases are left out of the table, and why: "2 (invalid 1, public_ip_in_network 1)". */
function ignored(s: DaemonStatus): string {
  const why = Object.entries(s.ignoredLeasesByReason ?? {}).filter(([, n]) => n > 0);
  return why.length === 0 ? String(s.ignoredLeases) : `${s.ignoredLeases} (${why.map(([r, n]) => `${r} ${n}`).join(', ')})`;
}

/** The status for a person: a summary, then the peers, then the counters. */
export function formatStatus(s: DaemonStatus): string {
  const details = Object.entries(s.engine.details).map(([k, v]) => `${k} ${String(v)}`);
  const summary: [string, string][] = [
    ['node', `${s.node} (weftd ${s.version}, ${s.state})`],
    ['readiness', s.readiness.reasons.length > 0 ? `${s.readiness.status}: ${s.readiness.reasons.join('; ')}` : s.readiness.status],
    ['subnet', s.subnet ? `${s.subnet} of ${s.network ?? '?'}` : (s.noSubnet ?? 'none yet')],
    ['public ip', s.publicIp ?? 'not known yet'],
    [
      'lease',
      `${s.leaseExpiresInS === null ? 'not held' : `expires in ${formatDuration(s.leaseExpiresInS)} unless renewed`} (renewals ${s.renewals}, re-acquisitions ${s.reacquisitions}, subnets lost ${s.subnetLosses})`,
    ],
    ['engine', details.length > 0 ? `${s.engine.kind} (${details.join(', ')})` : s.engine.kind],
    [
      'etcd',
      `${s.etcd.connected ? 'connected' : 'not connected'} (${s.etcd.endpoints.join(',')}; ${s.etcd.lastContactAgoS === null ? 'never answered' : `last answer ${s.etcd.lastContactAgoS} s ago`}; watch resyncs ${s.watchResyncs}; ignored leases ${ignored(s)})`,
    ],
  ];
  const enc = s.encryption;
  if (enc) summary.push(['encryption', `${enc.mode}${enc.mode === 'off' ? '' : `${enc.published ? '' : ' (not applied yet)'}, WireGuard port ${enc.port}`}; key ${enc.publicKey || 'none yet'}`]);
  const width = Math.max(...summary.map(([k]) => k.length)) + 2;
  let out = summary.map(([k, v]) => `${k.padEnd(width)}${v}\n`).join('');

  out += `\npeers: ${s.peers.length}\n`;
  if (s.peers.length > 0) {
    const peers = [...s.peers].sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }));
    out += formatTable([['SUBNET', 'NODE', 'PUBLIC IP'], ...peers.map((p) => [p.subnet, p.node, `${p.publicIp}:${p.port}`])]);
  }
  if (enc && enc.peers.length > 0) {
    const rows = [...enc.peers].sort((a, b) => a.node.localeCompare(b.node, 'en', { numeric: true }));
    out += `\nWireGuard peers: ${rows.length}\n`;
    out += formatTable([
      ['NODE', 'ENDPOINT', 'SESSION', 'LAST HANDSHAKE', 'KEY'],
      ...rows.map((p) => [p.node, p.endpoint, p.state, p.lastHandshakeAgoS === null ? 'never' : `${formatDuration(p.lastHandshakeAgoS)} ago`, p.key]),
    ]);
  }

  const c = s.counters;
  if (!c) return `${out}\ncounters: none (the dataplane has not started)\n`;
  out += `\n${formatTable([
    ['DIRECTION', 'PACKETS', 'BYTES', 'DROPS'],
    ['inside (pods -> nodes)', String(c.inside_packets), String(c.inside_bytes), String(totalDrops(c, 'inside'))],
    ['outside (nodes -> pods)', String(c.outside_packets), String(c.outside_bytes), String(totalDrops(c, 'outside'))],
  ])}`;
  const nonzero = COUNTER_NAMES.filter((n) => (n.includes('_drop_') || n === 'inside_icmp_unreachable') && c[n] > 0);
  if (nonzero.length > 0) out += `by reason: ${nonzero.map((n) => `${n} ${c[n]}`).join(', ')}\n`;
  return out;
}
