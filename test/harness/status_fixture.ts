// A hand-made DaemonStatus for the metrics and HTTP tests, and a fake StatusSource.

import { COUNTER_NAMES, type CounterSnapshot, snapshot } from '../../src/dataplane/counters.js';
import type { DaemonStatus, StatusSource } from '../../src/observe/status.js';

/** Counter i holds 100 + i, so every value is distinct and known. */
export const counters: CounterSnapshot = snapshot(COUNTER_NAMES.map((_, i) => 100 + i));

export function sampleStatus(over: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    node: 'node1',
    version: '0.1.0',
    state: 'running',
    engine: { kind: 'native', details: { queues: 2, vnetHdr: true } },
    network: '198.19.0.0/16',
    subnet: '198.19.1.0/24',
    noSubnet: null,
    publicIp: '198.18.0.1',
    port: 4790,
    leaseExpiresInS: 86_000,
    leaseTtlS: 86_400,
    etcd: { endpoints: ['http://198.18.0.254:2379'], prefix: '/weft', connected: true, lastContactAgoS: 2 },
    renewals: 3,
    reacquisitions: 1,
    subnetLosses: 0,
    watchResyncs: 7,
    ignoredLeases: 2,
    ignoredLeasesByReason: { invalid: 1, outside_network: 0, subnet_length: 0, public_ip_in_network: 1, own_address: 0, own_key: 0, shared_key: 0 },
    peers: [
      { subnet: '198.19.2.0/24', node: 'node2', publicIp: '198.18.0.2', port: 4790 },
      { subnet: '198.19.3.0/24', node: 'node3', publicIp: '198.18.0.3', port: 4790 },
    ],
    counters,
    encryption: {
      mode: 'wireguard',
      published: true,
      publicKey: Buffer.alloc(32, 1).toString('base64'),
      port: 51820,
      peers: [
        { node: 'node2', key: Buffer.alloc(32, 2).toString('base64'), endpoint: '198.18.0.2:51820', sessions: 2, lastHandshakeAgoS: 30, state: 'up' },
        { node: 'node3', key: Buffer.alloc(32, 3).toString('base64'), endpoint: '198.18.0.3:51820', sessions: 0, lastHandshakeAgoS: null, state: 'failing' },
      ],
    },
    readiness: { status: 'ready', reasons: [] },
    host: {
      device: { kind: 'tun', name: 'weft0', mtu: 1464, address: '198.19.1.0/16' },
      underlay: { iface: 'eth0', mtu: 1500 },
      encapOverhead: 36,
      subnetFile: '/run/weft/subnet.env',
      encapFilter: { wanted: true, backend: 'nftables', error: null },
      ipMasq: { wanted: false, backend: null, error: null },
    },
    ...over,
  };
}

/** A StatusSource whose status the test sets. */
export class FakeStatusSource implements StatusSource {
  calls = 0;
  constructor(public current: DaemonStatus = sampleStatus()) {}
  status(): DaemonStatus {
    this.calls++;
    return this.current;
  }
}
