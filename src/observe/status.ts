// What a running weftd reports about itself: one snapshot type, read by the
// HTTP endpoints (/metrics, /healthz, /readyz, /status) and `weftctl status`.

import type { CounterSnapshot } from '../dataplane/counters.js';
import type { EncryptionMode } from '../constants.js';
import type { EngineDetails, WireguardPeerStatus } from '../dataplane/engine.js';
import type { IgnoredReason } from '../registry/lease_problem.js';

/** waiting: up, but holding no subnet (the network is full, or the node lost its own and waits for another). */
export type DaemonState = 'starting' | 'waiting' | 'running' | 'stopping';

export interface PeerStatus {
  readonly subnet: string;
  readonly node: string;
  readonly publicIp: string;
  readonly port: number;
}

/** What a node runs with for encryption: the mode the config asks for, its key and port, its peers' sessions. */
export interface EncryptionStatus {
  readonly mode: EncryptionMode;
  /** Whether this node's lease publishes its current key (the mode is applied). */
  readonly published: boolean;
  /** '' until the node has a key (created when it first encrypts). */
  readonly publicKey: string;
  readonly port: number;
  readonly peers: readonly WireguardPeerStatus[];
}

/** Rules of weft's own in the host firewall, as weftd was asked for them and as it installed them. */
export interface FirewallStatus {
  /** Asked for (--pod-encap-filter, --ip-masq). */
  readonly wanted: boolean;
  /** The mechanism holding the rules (nftables, iptables); null while they are not installed. */
  readonly backend: string | null;
  /** Why installing them failed, when it did. */
  readonly error: string | null;
}

/** What weftd set up on the host: what `weftctl check` compares the host with. */
export interface HostStatus {
  /** The device the engine forwards through, as configured (a TUN, or the kernel engine's VXLAN-GPE device): null until it exists. */
  readonly device: { readonly kind: 'tun' | 'vxlan'; readonly name: string; readonly mtu: number; readonly address: string } | null;
  /** The underlay as found at start: its interface (null when weftd does not know it) and MTU. */
  readonly underlay: { readonly iface: string | null; readonly mtu: number } | null;
  /** Bytes each packet grows by on the underlay: the device's MTU may be at most the underlay's less this. */
  readonly encapOverhead: number;
  readonly subnetFile: string;
  readonly encapFilter: FirewallStatus;
  readonly ipMasq: FirewallStatus;
}

export interface DaemonStatus {
  readonly node: string;
  readonly version: string;
  readonly state: DaemonState;
  /** details: empty until the engine exists. */
  readonly engine: { readonly kind: string; readonly details: Partial<EngineDetails> };
  /** Set once the network config is read. */
  readonly network: string | null;
  /** The subnet held now; null before one is, and while the node holds none. */
  readonly subnet: string | null;
  /** Why the node holds no subnet now (state waiting); null otherwise. */
  readonly noSubnet: string | null;
  readonly publicIp: string | null;
  /** The UDP port this node receives on; set once the network config is read. */
  readonly port: number | null;
  /** Seconds until the lease expires unless renewed, as far as this node knows. */
  readonly leaseExpiresInS: number | null;
  /** The TTL each renewal asks for (--lease-ttl); renewed every third of it. */
  readonly leaseTtlS: number;
  readonly etcd: {
    readonly endpoints: readonly string[];
    readonly prefix: string;
    readonly connected: boolean;
    /** Seconds since etcd last answered; null before it ever did. */
    readonly lastContactAgoS: number | null;
  };
  readonly renewals: number;
  readonly reacquisitions: number;
  /** Times a subnet this node held was taken by another node, since the daemon started. */
  readonly subnetLosses: number;
  readonly watchResyncs: number;
  /** Leases left out of the route table now, for any reason (registry/lease_problem.ts). */
  readonly ignoredLeases: number;
  /** The same, by reason; every reason present. */
  readonly ignoredLeasesByReason: Readonly<Record<IgnoredReason, number>>;
  readonly peers: readonly PeerStatus[];
  readonly counters: CounterSnapshot | null;
  /** Null until the key is loaded. */
  readonly encryption: EncryptionStatus | null;
  /** ready: forwarding with a held lease and etcd reachable; degraded: forwarding, etcd unreachable within the grace period. */
  readonly readiness: { readonly status: 'ready' | 'degraded' | 'not_ready'; readonly reasons: readonly string[] };
  readonly host: HostStatus;
}

export interface StatusSource {
  status(): DaemonStatus;
}
