// What a running weftd reports about itself: one snapshot type, read by the
// HTTP endpoints (/metrics, /healthz, /readyz, /status) and `weftctl status`.

import type { CounterSnapshot } from '../dataplane/counters.js';
import type { EngineDetails } from '../dataplane/engine.js';
import type { IgnoredReason } from '../registry/lease_problem.js';

/** waiting: up, but holding no subnet (the network is full, or the node lost its own and waits for another). */
export type DaemonState = 'starting' | 'waiting' | 'running' | 'stopping';

export interface PeerStatus {
  readonly subnet: string;
  readonly node: string;
  readonly publicIp: string;
  readonly port: number;
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
  /** Seconds until the lease expires unless renewed, as far as this node knows. */
  readonly leaseExpiresInS: number | null;
  readonly etcd: {
    readonly endpoints: readonly string[];
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
  /** ready: forwarding with a held lease and etcd reachable; degraded: forwarding, etcd unreachable within the grace period. */
  readonly readiness: { readonly status: 'ready' | 'degraded' | 'not_ready'; readonly reasons: readonly string[] };
}

export interface StatusSource {
  status(): DaemonStatus;
}
