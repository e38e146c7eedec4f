// weftd's readiness policy, pure: from what the daemon knows of itself,
// ready / degraded / not ready, with the reasons /readyz and `weftctl
// status` print.

import type { DaemonState, DaemonStatus } from '../observe/status.js';

export interface ReadinessFacts {
  readonly state: DaemonState;
  /** Whether a lease is held and the dataplane was started. */
  readonly forwarding: boolean;
  /** Whether the started dataplane still forwards. */
  readonly engineHealthy: boolean;
  /** Whether the registry's latest call reached etcd; undefined before there is a registry. */
  readonly etcdReachable: boolean | undefined;
  /** Seconds since etcd last answered; undefined before it ever did. */
  readonly etcdDownForS: number | undefined;
  readonly etcdGraceS: number;
  readonly etcdEndpoints: readonly string[];
  /** Why re-listing the leases fails, while it does. */
  readonly resyncFailure: string | undefined;
  /** Why the node holds no subnet (state waiting). */
  readonly noSubnet: string | undefined;
}

/**
 * Not ready until the lease is held and the dataplane forwards, and when it
 * stops forwarding; degraded (still forwarding with the last table) while
 * etcd is unreachable for at most the grace period or re-listing fails;
 * not ready once etcd stays away longer.
 */
export function readiness(f: ReadinessFacts): DaemonStatus['readiness'] {
  if (f.state !== 'running' || !f.forwarding) {
    const reasons = [f.state === 'stopping' ? 'stopping' : f.state === 'waiting' ? `no subnet: ${f.noSubnet ?? 'waiting for one'}` : 'starting: no lease or dataplane yet'];
    if ((f.state === 'starting' || f.state === 'waiting') && f.etcdReachable === false) {
      reasons.push(`waiting for etcd ${f.etcdEndpoints.join(',')}: ${f.etcdDownForS === undefined ? 'it has not answered yet' : 'it stopped answering'}`);
    }
    return { status: 'not_ready', reasons };
  }
  if (!f.engineHealthy) return { status: 'not_ready', reasons: ['the dataplane stopped forwarding'] };
  if (f.etcdReachable === false) {
    const downS = f.etcdDownForS ?? Infinity;
    return {
      status: downS <= f.etcdGraceS ? 'degraded' : 'not_ready',
      reasons: [`etcd unreachable for ${Number.isFinite(downS) ? Math.round(downS) : '?'} s (grace ${f.etcdGraceS} s); forwarding with the last table`],
    };
  }
  if (f.resyncFailure) return { status: 'degraded', reasons: [`re-listing the leases fails (${f.resyncFailure}); forwarding with the last table`] };
  return { status: 'ready', reasons: [] };
}
