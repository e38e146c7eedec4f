// The lease keeper against a real etcd: renewals, loss and re-acquisition.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { systemClock } from '../../src/clock.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { WeftError } from '../../src/errors.js';
import { LeaseKeeper } from '../../src/registry/lease_keeper.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import type { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import { captureLogger, config, etcdEndpoint, registry, uniquePrefix } from '../harness/registry_fixture.js';
import { until } from '../harness/until.js';

const run = promisify(execFile);
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});


async function setUp(node: string, prefix = uniquePrefix('keeper')) {
  const r: EtcdRegistry = registry(prefix);
  const { log, records } = captureLogger();
  const manager = new LeaseManager({ registry: r, config: config('198.19.0.0/16'), value: { nodeName: node, publicIp: '198.18.0.1', port: 4790, vni: 1, version: 't', engine: 'js', instance: 'i1' }, ttlS: 6, stateDir: undefined, log, clock: systemClock });
  const rec = await manager.acquire();
  const fatal: WeftError[] = [];
  const keeper = new LeaseKeeper({ manager, initial: rec, ttlS: 6, log, events: { onLost: (e) => fatal.push(e) }, clock: systemClock });
  keeper.start();
  cleanup.push(() => {
    keeper.stop();
    r.close();
  });
  return { r, keeper, records, fatal, rec, prefix };
}

const events = (records: Record<string, unknown>[], name: string): number => records.filter((x) => x.event === name).length;

describe('lease keeper (real etcd)', () => {
  it('renews before expiry, so the lease outlives its TTL', async () => {
    const { r, rec, keeper } = await setUp('n1');
    await new Promise((res) => setTimeout(res, 7000));
    expect(await r.leaseTtl(keeper.record)).toBeGreaterThan(2);
    expect(keeper.record.etcdLease).toBe(rec.etcdLease);
  }, 15_000);

  it('re-acquires the same subnet when its key is deleted, and revokes the old etcd lease', async () => {
    const { r, rec, keeper, records } = await setUp('n1');
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'del', rec.key]);
    keeper.lostNow('test deleted the key');
    await until('lease_reacquired', () => events(records, 'lease_reacquired') === 1);
    expect(keeper.record.subnet).toEqual(rec.subnet);
    expect((await r.listLeases()).records.map((x) => x.key)).toEqual([rec.key]);
    expect(await r.leaseTtl(rec)).toBe(-1);
  });

  it('notices a revoked etcd lease at the next renewal and re-acquires', async () => {
    const { r, rec, keeper, records } = await setUp('n1');
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'lease', 'revoke', BigInt(rec.etcdLease).toString(16)]);
    await until('lease_reacquired', () => events(records, 'lease_reacquired') === 1, 8000);
    expect(events(records, 'lease_lost')).toBe(1);
    expect(keeper.record.subnet).toEqual(rec.subnet);
    expect((await r.listLeases()).records).toHaveLength(1);
  });

  it('reports a fatal conflict when another node took the subnet meanwhile', async () => {
    const { r, rec, keeper, fatal, prefix } = await setUp('n1');
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'del', rec.key]);
    const other = registry(prefix);
    cleanup.push(() => other.close());
    await other.createLease(rec.subnet, { nodeName: 'thief', publicIp: '198.18.0.9', port: 4790, vni: 1, version: 't', engine: 'js', instance: 'i1' }, 60);
    keeper.lostNow('test');
    await until('fatal', () => fatal.length === 1);
    expect(fatal[0]!.code).toBe('WEFT_LEASE_CONFLICT');
    expect(fatal[0]!.message).toMatch(/another node holds it now/);
    // The subnet it was offered instead is given back: it will not forward for it.
    expect((await r.listLeases()).records.map((x) => x.lease.nodeName)).toEqual(['thief']);
  });
});
