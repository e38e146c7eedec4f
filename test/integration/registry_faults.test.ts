// The registry's lease clients when etcd misbehaves, against real etcd on
// loopback: a frozen etcd (SIGSTOP: connections open, no answers) must not
// wedge the watcher or its close(); a lost subnet is taken back exactly, or
// not at all.

import { systemClock } from '../../src/clock.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { WeftError } from '../../src/errors.js';
import { formatCidr, parseCidr } from '../../src/net/ipv4.js';
import { LeaseKeeper } from '../../src/registry/lease_keeper.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import { LeaseWatcher } from '../../src/registry/lease_watcher.js';
import type { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import type { LeaseEvent } from '../../src/registry/registry.js';
import type { SubnetLease } from '../../src/registry/schema.js';
import { startEtcd } from '../harness/etcd_server.js';
import { freeze, thaw } from '../harness/freeze.js';
import { captureLogger, config, registry, uniquePrefix } from '../harness/registry_fixture.js';
import { sleep, until } from '../harness/until.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const lease = (node: string, ip = '198.18.0.1'): SubnetLease => ({ nodeName: node, publicIp: ip, port: 4790, vni: 1, version: 't', engine: 'js', instance: `${node}-i` });

describe('registry under etcd faults (real etcd on loopback)', () => {
  it('a watcher keeps re-listing on its deadlines while etcd is frozen, and closes within one', async () => {
    const etcd = await startEtcd();
    let frozen = false;
    cleanup.push(async () => {
      if (frozen) thaw(etcd.pid);
      await etcd.stop();
    });
    const prefix = uniquePrefix('frozen');
    const r = registry(prefix, etcd.endpoint, 1000);
    cleanup.push(() => r.close());
    const self = parseCidr('198.19.1.0/24');
    expect(await r.createLease(self, lease('n1'), 60)).toBeDefined();
    const { log, records } = captureLogger();
    const watcher = new LeaseWatcher({
      registry: r,
      config: config(),
      self,
      nodeName: 'n1',
      instance: 'n1-i',
      publicIp: 0,
      log,
      resyncIntervalMs: 1000,
      clock: systemClock,
      events: { onTable: () => undefined, onSelfDeleted: () => undefined, onSelfTaken: () => undefined },
    });
    await watcher.start();

    await freeze(etcd.pid);
    frozen = true;
    // A re-list cancels the old watch first, and etcd never answers that
    // cancel: each attempt must still fail on its deadlines, and be retried.
    await until('two failed re-lists while frozen', () => records.filter((x) => x.event === 'watch_resync_failed').length >= 2, 15_000);
    const failed = records.filter((x) => x.event === 'watch_resync_failed');
    // Retries never wait longer than the resync interval.
    expect(Math.max(...failed.map((x) => Number(x.retry_ms)))).toBeLessThanOrEqual(1000);
    const t0 = Date.now();
    await watcher.close();
    expect(Date.now() - t0).toBeLessThan(2500);
    const n = records.length;
    thaw(etcd.pid);
    frozen = false;
    await sleep(1500);
    // Closed means closed: no re-list, no table, no log after it.
    expect(records.slice(n)).toEqual([]);
  }, 30_000);

  it('takes back exactly its subnet, or stops naming the holder without leasing another', async () => {
    const prefix = uniquePrefix('reclaim');
    const r: EtcdRegistry = registry(prefix);
    const other = registry(prefix);
    cleanup.push(() => {
      r.close();
      other.close();
    });
    const { log, records } = captureLogger();
    const manager = new LeaseManager({ registry: r, config: config(), value: lease('n1'), ttlS: 30, stateDir: undefined, log, clock: systemClock });
    const rec = await manager.acquire();
    const fatal: WeftError[] = [];
    const keeper = new LeaseKeeper({ manager, initial: rec, ttlS: 30, log, events: { onLost: (e) => fatal.push(e) }, clock: systemClock });
    keeper.start();
    cleanup.push(() => keeper.stop());

    // Every put under the prefix from here on.
    const puts: string[] = [];
    const start = (await r.listLeases()).revision;
    const watch = await other.watchLeases((BigInt(start) + 1n).toString(), {
      onEvent: (ev: LeaseEvent) => {
        if (ev.type === 'put') puts.push(`${formatCidr(ev.record.subnet)} ${ev.record.lease.nodeName}`);
      },
      onBroken: () => undefined,
    });
    cleanup.push(() => watch.cancel());

    // Lost while free: the same subnet again.
    await r.releaseLease(rec);
    keeper.lostNow('test released it');
    await until('lease_reacquired', () => records.some((x) => x.event === 'lease_reacquired'));
    expect(keeper.record.subnet).toEqual(rec.subnet);

    // Lost to another node: fatal, naming it; no other subnet leased meanwhile.
    await r.releaseLease(keeper.record);
    expect(await other.createLease(rec.subnet, lease('thief', '198.18.0.9'), 60)).toBeDefined();
    keeper.lostNow('test gave it away');
    await until('fatal', () => fatal.length === 1);
    expect(fatal[0]!.code).toBe('WEFT_LEASE_CONFLICT');
    expect(fatal[0]!.message).toMatch(/another node holds it now: node thief \(198\.18\.0\.9\)/);
    await sleep(300);
    const s = formatCidr(rec.subnet);
    expect(puts).toEqual([`${s} n1`, `${s} thief`]);
    expect((await r.listLeases()).records.map((x) => x.lease.nodeName)).toEqual(['thief']);
  }, 30_000);
});
