// What a running weftd reports about itself: one snapshot type, read by the
// HTTP endpoints (/metrics, /healthz, /readyz, /status) and `weftctl status`.

import type { CounterSnapshot } from '../dataplane/counters.js';
import type { EncryptionMode } from '../constants.js';
import type { EngineDetails, WireguardPeerStatus } from '../dataplane/engine.js';

export type DaemonState = 'starting' | 'running' | 'stopping';

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
  readonly publicKey: string;
  readonly port: number;
  readonly peers: readonly WireguardPeerStatus[];
}

export interface DaemonStatus {
  readonly node: string;
  readonly version: string;
  readonly state: DaemonState;
  /** details: empty until the engine exists. */
  readonly engine: { readonly kind: string; readonly details: Partial<EngineDetails> };
  /** Set once the lease is held. */
  readonly network: string | null;
  readonly subnet: string | null;
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
  readonly watchResyncs: number;
  /** Leases left out of the route table now (a value that does not parse, an unreachable or looping public IP). */
  readonly ignoredLeases: number;
  readonly peers: readonly PeerStatus[];
  readonly counters: CounterSnapshot | null;
  /** Null until the key is loaded. */
  readonly encryption: EncryptionStatus | null;
  /** ready: forwarding with a held lease and etcd reachable; degraded: forwarding, etcd unreachable within the grace period. */
  readonly readiness: { readonly status: 'ready' | 'degraded' | 'not_ready'; readonly reasons: readonly string[] };
}

export interface StatusSource {
  status(): DaemonStatus;
}
