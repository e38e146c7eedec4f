// The Prometheus rendering of a DaemonStatus: pure, DaemonStatus in, text out.

import { describe, expect, it } from 'vitest';
import { COUNTER_NAMES } from '../../src/dataplane/counters.js';
import { DROP_REASONS, escapeLabelValue, renderMetrics } from '../../src/observe/metrics.js';
import { counters, sampleStatus } from '../harness/status_fixture.js';

/** Checks the text is well-formed exposition format; returns samples as "name{labels}" -> value. */
function parseExposition(text: string): Map<string, number> {
  expect(text.endsWith('\n')).toBe(true);
  const help = new Map<string, number>();
  const type = new Map<string, string>();
  const samples = new Map<string, number>();
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    const h = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (h) {
      expect(help.has(h[1]!), `second # HELP for ${h[1]}`).toBe(false);
      help.set(h[1]!, 1);
      current = h[1]!;
      continue;
    }
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (t) {
      expect(type.has(t[1]!), `second # TYPE for ${t[1]}`).toBe(false);
      expect(t[1]).toBe(current);
      type.set(t[1]!, t[2]!);
      continue;
    }
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|[+-]Inf)$/.exec(line);
    expect(s, `not a sample line: ${line}`).not.toBeNull();
    const name = s![1]!;
    expect(name, `sample ${name} outside its metric's block`).toBe(current);
    expect(type.has(name), `sample ${name} before its # TYPE`).toBe(true);
    if (type.get(name) === 'counter') expect(name.endsWith('_total')).toBe(true);
    const key = `${name}${s![2] ?? ''}`;
    expect(samples.has(key), `duplicate series ${key}`).toBe(false);
    samples.set(key, Number(s![3]));
  }
  for (const name of type.keys()) expect(name.startsWith('weft_')).toBe(true);
  expect([...help.keys()].sort()).toEqual([...type.keys()].sort());
  return samples;
}

describe('renderMetrics', () => {
  it('renders a status to the expected samples', () => {
    const text = renderMetrics(sampleStatus());
    const lines = text.split('\n');
    for (const expected of [
      'weft_build_info{version="0.1.0",engine="native"} 1',
      'weft_readiness{status="ready"} 1',
      'weft_readiness{status="degraded"} 0',
      'weft_readiness{status="not_ready"} 0',
      `weft_inside_packets_total ${counters.inside_packets}`,
      `weft_inside_bytes_total ${counters.inside_bytes}`,
      `weft_outside_packets_total ${counters.outside_packets}`,
      `weft_outside_bytes_total ${counters.outside_bytes}`,
      `weft_inside_icmp_unreachable_total ${counters.inside_icmp_unreachable}`,
      `weft_drops_total{direction="outside",reason="vni"} ${counters.outside_drop_vni}`,
      `weft_drops_total{direction="inside",reason="no_route"} ${counters.inside_drop_no_route}`,
      'weft_peers 2',
      'weft_lease_expires_in_seconds 86000',
      'weft_etcd_connected 1',
      'weft_etcd_last_contact_seconds 2',
      'weft_lease_renewals_total 3',
      'weft_lease_reacquisitions_total 1',
      'weft_watch_resyncs_total 7',
      '# TYPE weft_drops_total counter',
      '# TYPE weft_peers gauge',
      'weft_encryption_mode{mode="off"} 0',
      'weft_encryption_mode{mode="wireguard"} 1',
      'weft_encryption_mode{mode="wireguard-only"} 0',
      'weft_encryption_published 1',
      'weft_wireguard_peers{state="up"} 1',
      'weft_wireguard_peers{state="failing"} 1',
      'weft_wireguard_peers{state="connecting"} 0',
      `weft_wireguard_initiations_total ${counters.wg_initiations_sent}`,
      `weft_wireguard_handshakes_total ${counters.wg_handshakes_completed}`,
      `weft_drops_total{direction="outside",reason="wg_mac1"} ${counters.outside_drop_wg_mac1}`,
      `weft_drops_total{direction="inside",reason="plaintext"} ${counters.inside_drop_plaintext}`,
    ]) {
      expect(lines).toContain(expected);
    }
    parseExposition(text);
  });

  it('has a drop series for every drop counter, and only those', () => {
    const samples = parseExposition(renderMetrics(sampleStatus()));
    const dropCounters = COUNTER_NAMES.filter((n) => n.includes('_drop_'));
    expect(DROP_REASONS.map((d) => d.counter)).toEqual(dropCounters);
    const drops = [...samples.keys()].filter((k) => k.startsWith('weft_drops_total{'));
    expect(drops).toHaveLength(dropCounters.length);
    for (const name of dropCounters) {
      const [dir, reason] = name.split('_drop_') as [string, string];
      expect(samples.get(`weft_drops_total{direction="${dir}",reason="${reason}"}`), name).toBe(counters[name]);
    }
  });

  it('keeps label cardinality bounded: no peer, address or node in any label', () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ subnet: `198.19.${i + 10}.0/24`, node: `n${i}`, publicIp: `198.18.0.${i + 10}`, port: 4790 }));
    const text = renderMetrics(sampleStatus({ peers: many }));
    expect(text).toContain('weft_peers 50\n');
    expect(text).not.toMatch(/198\.1[89]\.|node1|n49/);
    expect(text.split('\n').filter((l) => !l.startsWith('#')).length).toBe(renderMetrics(sampleStatus()).split('\n').filter((l) => !l.startsWith('#')).length);
  });

  it('escapes label values', () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const text = renderMetrics(sampleStatus({ version: '1.0.0-"odd"\\\nbuild' }));
    expect(text).toContain('weft_build_info{version="1.0.0-\\"odd\\"\\\\\\nbuild",engine="native"} 1\n');
    parseExposition(text);
  });

  it('while starting: counters read 0, no lease expiry sample, not ready', () => {
    const text = renderMetrics(
      sampleStatus({
        state: 'starting',
        network: null,
        subnet: null,
        publicIp: null,
        leaseExpiresInS: null,
        etcd: { endpoints: ['http://127.0.0.1:1'], prefix: '/weft', connected: false, lastContactAgoS: null },
        renewals: 0,
        reacquisitions: 0,
        watchResyncs: 0,
        ignoredLeases: 0,
        peers: [],
        counters: null,
        readiness: { status: 'not_ready', reasons: ['starting: no lease or dataplane yet'] },
      }),
    );
    const samples = parseExposition(text);
    expect(text).toContain('# TYPE weft_lease_expires_in_seconds gauge\n');
    expect(samples.has('weft_lease_expires_in_seconds')).toBe(false);
    expect(samples.has('weft_etcd_last_contact_seconds')).toBe(false);
    expect(samples.get('weft_inside_packets_total')).toBe(0);
    expect(samples.get('weft_drops_total{direction="outside",reason="spoofed_source"}')).toBe(0);
    expect(samples.get('weft_etcd_connected')).toBe(0);
    expect(samples.get('weft_peers')).toBe(0);
    expect(samples.get('weft_readiness{status="not_ready"}')).toBe(1);
    expect(samples.get('weft_readiness{status="ready"}')).toBe(0);
  });

  it('marks degraded as its own readiness series', () => {
    const samples = parseExposition(renderMetrics(sampleStatus({ readiness: { status: 'degraded', reasons: ['etcd unreachable'] } })));
    expect([samples.get('weft_readiness{status="ready"}'), samples.get('weft_readiness{status="degraded"}'), samples.get('weft_readiness{status="not_ready"}')]).toEqual([0, 1, 0]);
  });

  it('adds the kernel engine\'s device and routes, for that engine only, from its first scrape', () => {
    const kernel = (details: Record<string, unknown>) => parseExposition(renderMetrics(sampleStatus({ engine: { kind: 'kernel', details } })));
    const series = (details: Record<string, unknown>) => Object.fromEntries([...kernel(details)].filter(([k]) => k.startsWith('weft_kernel_')));
    const running = series({ device: 'weft0', routes: 2, unroutablePeers: 1, deviceRepairs: 3, deviceRxErrors: 4, deviceRxDropped: 5, deviceTxErrors: 6, deviceTxDropped: 7 });
    expect(running).toEqual({
      weft_kernel_routes: 2,
      weft_kernel_unroutable_peers: 1,
      weft_kernel_device_repairs_total: 3,
      'weft_kernel_device_errors_total{direction="inside"}': 6,
      'weft_kernel_device_errors_total{direction="outside"}': 4,
      'weft_kernel_device_dropped_total{direction="inside"}': 7,
      'weft_kernel_device_dropped_total{direction="outside"}': 5,
    });
    // Before the engine has started (its details name the device only): the same seven series, at 0.
    expect(series({ device: 'weft0' })).toEqual(Object.fromEntries(Object.keys(running).map((k) => [k, 0])));
    expect([...parseExposition(renderMetrics(sampleStatus()))].some(([k]) => k.startsWith('weft_kernel_'))).toBe(false);
  });
});
