// The control plane at scale, against the run's loopback etcd: 200 lease
// clients (real LeaseManager, LeaseKeeper and LeaseWatcher each, sharing 10
// connections) join at once; no subnet is ever held twice, every table comes
// to equal the live leases, and a change (one leaving as one joins) reaches
// every client. Correctness only: bench/scale.ts takes the timings at 1,000.

import { describe, expect, it } from 'vitest';
import { runScale } from '../harness/lease_fleet.js';
import { etcdEndpoint, uniquePrefix } from '../harness/registry_fixture.js';

describe('200 lease clients joining at once (real etcd)', () => {
  it('never holds a subnet twice, converges every table to the live leases, and brings every change to everyone', async () => {
    const r = await runScale({
      endpoints: [etcdEndpoint()],
      prefix: uniquePrefix('scale'),
      clients: 200,
      changes: 3,
      connections: 10,
      joinTimeoutMs: 30_000,
      ttlS: 60,
      resyncIntervalMs: 300_000,
      convergeTimeoutMs: 20_000,
      changeTimeoutMs: 10_000,
    });
    process.stderr.write(`[scale] ${r.clients} clients in ${r.network}: joined in ${r.joinMs} ms, converged ${r.convergeMs} ms later; change p50 ${r.propagation.p50Ms} ms p99 ${r.propagation.p99Ms} ms\n`);
    expect(r.doubles).toEqual([]);
    expect(r.problems).toEqual([]);
    expect(r.unconverged).toEqual([]);
    expect(r.convergeMs).not.toBeNull();
    // Every change reached every other client: 3 changes x 199 of them.
    expect(r.propagation.unseen).toBe(0);
    expect(r.propagation.samples).toBe(3 * 199);
  }, 60_000);
});
