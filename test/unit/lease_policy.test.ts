// Lease policy on simulated time: LeaseManager, LeaseKeeper and LeaseWatcher
// against the in-memory registry on a manual clock (the contract suite holds
// the twin to etcd's behaviour). Days of renewals, clock jumps and outages
// longer than a TTL run in milliseconds.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { WeftError } from '../../src/errors.js';
import { formatCidr, parseCidr, parseIp } from '../../src/net/ipv4.js';
import { subnetKey } from '../../src/registry/keys.js';
import { encodeSubnetLease } from '../../src/registry/schema.js';
import { LeaseKeeper } from '../../src/registry/lease_keeper.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import { LeaseWatcher } from '../../src/registry/lease_watcher.js';
import { MemoryRegistry, MemoryStore } from '../../src/registry/memory_registry.js';
import type { LeaseRecord } from '../../src/registry/registry.js';
import { NO_PEER, type RouteTable } from '../../src/routes/route_table.js';
import { ManualClock } from '../harness/manual_clock.js';
import { captureLogger, config } from '../harness/registry_fixture.js';

const PREFIX = '/weft';
const HOUR_MS = 3_600_000;
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** One node's lease control plane: its own registry client, manager and (once started) keeper. */
function node(store: MemoryStore, clock: ManualClock, name: string, o: { ttlS: number; ip?: string; instance?: string; stateDir?: string; random?: () => number }) {
  const registry = new MemoryRegistry(store, PREFIX);
  const { log, records } = captureLogger();
  const value = { nodeName: name, publicIp: o.ip ?? '198.18.0.1', port: 4790, vni: 1, version: 't', engine: 'js', instance: o.instance ?? `${name}-1` };
  const manager = new LeaseManager({ registry, config: config(), value, ttlS: o.ttlS, stateDir: o.stateDir, log, clock, ...(o.random ? { random: o.random } : {}) });
  const fatal: WeftError[] = [];
  const events = (event: string): Record<string, unknown>[] => records.filter((x) => x.event === event);
  const keep = (initial: LeaseRecord): LeaseKeeper => {
    const keeper = new LeaseKeeper({ manager, initial, ttlS: o.ttlS, log, events: { onLost: (e) => fatal.push(e) }, clock });
    keeper.start();
    cleanup.push(() => keeper.stop());
    return keeper;
  };
  return { registry, manager, fatal, events, keep };
}

function world() {
  const clock = new ManualClock();
  return { clock, store: new MemoryStore(clock) };
}

/** A fresh world with node n1 holding a lease of `ttlS` and keeping it. */
async function keeping(ttlS: number) {
  const { clock, store } = world();
  const n = node(store, clock, 'n1', { ttlS });
  const rec = await n.manager.acquire();
  return { clock, store, n, rec, keeper: n.keep(rec) };
}

/** n1's watcher over `registry`, started, with the tables it published and its log records. */
async function watching(registry: MemoryRegistry, clock: ManualClock, mine: LeaseRecord, publicIp = 0) {
  const tables: RouteTable[] = [];
  const { log, records } = captureLogger();
  const watcher = new LeaseWatcher({
    registry,
    config: config(),
    self: mine.subnet,
    nodeName: 'n1',
    instance: 'n1-1',
    publicIp,
    log,
    resyncIntervalMs: 300_000,
    clock,
    events: { onTable: (t) => tables.push(t), onSelfDeleted: () => undefined, onSelfTaken: () => undefined },
  });
  await watcher.start();
  cleanup.push(() => watcher.close());
  return { watcher, tables, records };
}

describe('lease policy on a manual clock (in-memory registry)', () => {
  it('renews at a third of the TTL for two days: the same etcd lease throughout, never lost', async () => {
    const { clock, n, rec, keeper } = await keeping(3600);
    // Sampled every 7 minutes (off the renewals' 20-minute beat) for 48 hours.
    let lowest = Infinity;
    for (let t = 0; t < 48 * HOUR_MS; t += 7 * 60_000) {
      await clock.advance(7 * 60_000);
      lowest = Math.min(lowest, await n.registry.leaseTtl(keeper.record));
    }
    expect(keeper.renewals).toBe(Math.floor((Math.ceil((48 * 60) / 7) * 7) / 20));
    expect(keeper.reacquisitions).toBe(0);
    expect(keeper.record.etcdLease).toBe(rec.etcdLease);
    // Renewed every 20 minutes: never below 2/3 of the TTL (40 minutes) left.
    expect(lowest).toBeGreaterThanOrEqual(2400);
    expect(lowest).toBeLessThan(3600);
    expect(keeper.secondsLeft()).toBeGreaterThanOrEqual(2400);
    expect(n.events('lease_lost')).toEqual([]);
  });

  it('a wall-clock jump past expiry: the lease is gone at the next renewal, and the same subnet is taken back on a fresh lease', async () => {
    const { clock, n, rec, keeper } = await keeping(60);
    await clock.advance(10_000);
    clock.jump(5 * 60_000);
    // The store expired the lease on its (jumped) clock; the keeper learns it at its renewal, due at 20 s.
    await clock.advance(9_999);
    expect(keeper.reacquisitions).toBe(0);
    await clock.advance(1);
    expect(n.events('lease_lost')).toHaveLength(1);
    expect(keeper.reacquisitions).toBe(1);
    expect(keeper.record.subnet).toEqual(rec.subnet);
    expect(keeper.record.etcdLease).not.toBe(rec.etcdLease);
    expect((await n.registry.listLeases()).records.map((r) => [formatCidr(r.subnet), r.etcdLease])).toEqual([[formatCidr(rec.subnet), keeper.record.etcdLease]]);
    expect(await n.registry.leaseTtl(keeper.record)).toBe(60);
    expect(n.fatal).toEqual([]);
  });

  it('an outage shorter than the TTL: renewals fail and are retried every 5 s, and the lease is kept as it was', async () => {
    const { clock, store, n, rec, keeper } = await keeping(60);
    await clock.advance(15_000);
    store.setOutage(true);
    await clock.advance(30_000); // renewal due at 20 s fails, retried at 25, 30, ... 45 s
    expect(n.events('lease_renew_failed').length).toBe(6);
    expect(keeper.renewals).toBe(0);
    store.setOutage(false);
    await clock.advance(5_000); // the retry at 50 s, 10 s before expiry
    expect(keeper.renewals).toBe(1);
    expect(keeper.record.etcdLease).toBe(rec.etcdLease);
    expect(await n.registry.leaseTtl(rec)).toBe(60);
    expect(n.events('lease_lost')).toEqual([]);
    expect(keeper.reacquisitions).toBe(0);
  });

  it('a rewrite and a renewal never overlap: the renewal due mid-rewrite waits, and the next is an interval after the rewrite', async () => {
    const { clock, n, rec, keeper } = await keeping(60);
    // The rewrite's write held open until released; a renewal started meanwhile is the race.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let rewriting = false;
    const overlaps: number[] = [];
    const rewrite = n.manager.rewrite.bind(n.manager);
    const renew = n.manager.renew.bind(n.manager);
    n.manager.rewrite = async (r) => {
      rewriting = true;
      await held;
      try {
        return await rewrite(r);
      } finally {
        rewriting = false;
      }
    };
    n.manager.renew = (r) => {
      if (rewriting) overlaps.push(clock.now());
      return renew(r);
    };
    await clock.advance(19_000);
    const done = keeper.rewrite();
    await clock.advance(5_000); // the renewal was due at 20 s
    expect(overlaps).toEqual([]);
    expect(keeper.renewals).toBe(0);
    release();
    await done;
    expect(keeper.record.etcdLease).not.toBe(rec.etcdLease);
    expect(n.events('lease_rewritten')).toHaveLength(1);
    await clock.advance(19_999); // next renewal: 20 s after the rewrite ended at 24 s
    expect(keeper.renewals).toBe(0);
    await clock.advance(1);
    expect(keeper.renewals).toBe(1);
    expect(overlaps).toEqual([]);
    expect(n.events('lease_lost')).toEqual([]);
  });

  it('an outage longer than the TTL: the lease is lost at its local deadline and the same subnet re-acquired once etcd answers', async () => {
    const { clock, store, n, rec, keeper } = await keeping(60);
    const other = node(store, clock, 'n2', { ttlS: 60, ip: '198.18.0.2' });
    await clock.advance(15_000);
    store.setOutage(true);
    await clock.advance(60_000); // 75 s: past the 60 s deadline, with no answer since 0 s
    expect(n.events('lease_lost')).toHaveLength(1);
    expect(keeper.reacquisitions).toBe(0);
    store.setOutage(false);
    expect((await other.registry.listLeases()).records).toEqual([]); // the store expired it meanwhile
    await clock.advance(5_000);
    expect(keeper.reacquisitions).toBe(1);
    expect(n.events('lease_reacquired')).toHaveLength(1);
    expect(keeper.record.subnet).toEqual(rec.subnet);
    expect((await other.registry.listLeases()).records.map((r) => r.lease.nodeName)).toEqual(['n1']);
    expect(n.fatal).toEqual([]);
  });

  it('an outage longer than the TTL during which another node took the subnet: fatal, naming it, and nothing else leased', async () => {
    const { clock, store, n, rec, keeper } = await keeping(60);
    store.setOutage(true);
    await clock.advance(70_000);
    store.setOutage(false);
    // The thief reaches etcd first (n1's retry is due at the next 5 s step).
    const thief = node(store, clock, 'thief', { ttlS: 600, ip: '198.18.0.9' });
    expect(await thief.registry.createLease(rec.subnet, { nodeName: 'thief', publicIp: '198.18.0.9', port: 4790, vni: 1, version: 't', engine: 'js', instance: 't' }, 600)).toBeDefined();
    await clock.advance(5_000);
    expect(n.fatal.map((e) => e.code)).toEqual(['WEFT_LEASE_CONFLICT']);
    expect(n.fatal[0]!.message).toMatch(/another node holds it now: node thief \(198\.18\.0\.9\)/);
    expect((await thief.registry.listLeases()).records.map((r) => r.lease.nodeName)).toEqual(['thief']);
    expect(keeper.reacquisitions).toBe(0);
  });

  it('a restart keeps the subnet: held under the node name, else the recorded one once its lease expired', async () => {
    const { clock, store } = world();
    const dir = await mkdtemp(join(tmpdir(), 'weft-policy-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // Picks the first free subnet for whoever asks without a preference.
    const first = (): number => 0;
    const before = node(store, clock, 'n1', { ttlS: 60, stateDir: dir, random: first });
    const rec = await before.manager.acquire();

    // A restart (new instance) while the lease lives: the same key rewritten on a fresh lease, the old lease revoked.
    const again = node(store, clock, 'n1', { ttlS: 60, instance: 'n1-2', stateDir: dir, random: first });
    const kept = await again.manager.acquire();
    expect(kept.subnet).toEqual(rec.subnet);
    expect(again.events('lease_acquired').map((x) => x.how)).toEqual(['kept']);
    expect(await again.registry.leaseTtl(rec)).toBe(-1);

    // Down for longer than the TTL: the lease expires, another node joins and takes the first free subnet...
    await clock.advance(61_000);
    const newcomer = await node(store, clock, 'n2', { ttlS: 60, ip: '198.18.0.2', random: first }).manager.acquire();
    expect(newcomer.subnet).toEqual(rec.subnet);
    await again.registry.releaseLease(newcomer);
    // ...and gives it back; the restarted n1 asks for the subnet it recorded, not a random one.
    const third = node(store, clock, 'n1', { ttlS: 60, instance: 'n1-3', stateDir: dir, random: () => 0.99 });
    const back = await third.manager.acquire();
    expect(back.subnet).toEqual(rec.subnet);
    expect(third.events('lease_acquired').map((x) => x.how)).toEqual(['reclaimed']);
  });

  it('an unreadable record of the last subnet is ignored with a warning, and rewritten with the subnet leased', async () => {
    const { clock, store } = world();
    const dir = await mkdtemp(join(tmpdir(), 'weft-policy-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'subnet'), 'not a subnet\n');
    const n = node(store, clock, 'n1', { ttlS: 60, stateDir: dir });
    const rec = await n.manager.acquire();
    expect(n.events('state_invalid')).toHaveLength(1);
    expect(n.events('lease_acquired').map((x) => x.how)).toEqual(['new']);
    expect(await readFile(join(dir, 'subnet'), 'utf8')).toBe(`${formatCidr(rec.subnet)}\n`);
  });

  it('a watcher follows peers across a partition of its node and a compaction: re-listed on reconnect, never stuck on the stale table', async () => {
    const { clock, store } = world();
    const self = node(store, clock, 'n1', { ttlS: 600 });
    const mine = await self.manager.acquire();
    const peer = node(store, clock, 'n2', { ttlS: 600, ip: '198.18.0.2' });
    const p1 = await peer.manager.acquire();
    const { watcher, tables, records } = await watching(self.registry, clock, mine);
    const peers = (): string[] => watcher.peers().map((p) => `${formatCidr(p.subnet)} ${p.node}`).sort();
    expect(peers()).toEqual([`${formatCidr(p1.subnet)} n2`]);

    // n1 alone is cut off while n2 gives its subnet back and n3 joins; history is compacted meanwhile.
    self.registry.setPartitioned(true);
    await peer.registry.releaseLease(p1);
    const p3 = await node(store, clock, 'n3', { ttlS: 600, ip: '198.18.0.3' }).manager.acquire();
    store.compact();
    await clock.advance(10_000);
    expect(peers()).toEqual([`${formatCidr(p1.subnet)} n2`]); // nothing reached n1
    self.registry.setPartitioned(false);
    await clock.advance(1_000); // the reconnected watch broke; the re-list comes at the first backoff step
    expect(records.filter((x) => x.event === 'watch_resync').length).toBeGreaterThanOrEqual(1);
    expect(peers()).toEqual([`${formatCidr(p3.subnet)} n3`]);
    expect(watcher.resyncFailure).toBeUndefined();
    expect(tables.length).toBeGreaterThanOrEqual(2);
  });

  it('a watch response of many events becomes one table, and every peer in it is logged once', async () => {
    const { clock, store } = world();
    const self = node(store, clock, 'n1', { ttlS: 600 });
    const mine = await self.manager.acquire();
    const { tables, records } = await watching(self.registry, clock, mine);
    expect(tables).toHaveLength(1);
    // 50 nodes' leases land at once, as one watch response delivers a mass join (etcd3 emits its events in one go).
    const free = Array.from({ length: 200 }, (_, k) => k + 1).filter((k) => `198.19.${k}.0/24` !== formatCidr(mine.subnet)).slice(0, 50);
    for (const k of free) {
      store.put(subnetKey(PREFIX, parseCidr(`198.19.${k}.0/24`)), encodeSubnetLease({ nodeName: `m${k}`, publicIp: `198.18.1.${k}`, port: 4790, vni: 1, version: 't', engine: 'js', instance: `m${k}` }));
    }
    await clock.advance(0);
    expect(tables).toHaveLength(2);
    expect(tables[1]!.peers).toHaveLength(50);
    expect(records.filter((x) => x.event === 'peer_added')).toHaveLength(50);
    // A lone change later is its own table.
    store.delete(subnetKey(PREFIX, parseCidr(`198.19.${free[0]}.0/24`)));
    await clock.advance(0);
    expect(tables).toHaveLength(3);
    expect(tables[2]!.peers).toHaveLength(49);
  });

  it('a table changed by an event equals one built from the leases: a lease of another length on a peer\'s base takes the peer out', async () => {
    const { clock, store } = world();
    const self = node(store, clock, 'n1', { ttlS: 600 });
    const mine = await self.manager.acquire();
    const { tables } = await watching(self.registry, clock, mine);
    const k = mine.subnet.base === parseCidr('198.19.77.0/24').base ? 78 : 77;
    const value = (name: string) => encodeSubnetLease({ nodeName: name, publicIp: '198.18.1.77', port: 4790, vni: 1, version: 't', engine: 'js', instance: name });
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${k}.0/24`)), value('m24'));
    await clock.advance(0);
    expect(tables.at(-1)!.peers.map((p) => p.node)).toEqual(['m24']);
    // A /25 at the same base: not routable in a /24 network, and the /24 it shadows in the watcher's view is gone from the table too.
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${k}.0/25`)), value('m25'));
    await clock.advance(0);
    expect(tables.at(-1)!.peers).toEqual([]);
    expect(tables.at(-1)!.lookup(parseCidr(`198.19.${k}.0/24`).base + 9)).toBe(NO_PEER);
  });

  it('every lease left out of the table is counted by its reason, and each reason is logged once', async () => {
    const { clock, store } = world();
    const self = node(store, clock, 'n1', { ttlS: 600, ip: '198.18.0.1' });
    const mine = await self.manager.acquire();
    const { watcher, tables, records } = await watching(self.registry, clock, mine, parseIp('198.18.0.1'));
    const value = (name: string, publicIp: string) => encodeSubnetLease({ nodeName: name, publicIp, port: 4790, vni: 1, version: 't', engine: 'js', instance: name });
    const free = Array.from({ length: 12 }, (_, k) => k + 1).filter((k) => `198.19.${k}.0/24` !== formatCidr(mine.subnet));
    store.put(subnetKey(PREFIX, parseCidr('198.18.200.0/24')), value('outside', '198.18.0.20'));
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[0]}.0/25`)), value('short', '198.18.0.21'));
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[1]}.0/24`)), value('looping', '198.19.250.1'));
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[2]}.0/24`)), value('twin', '198.18.0.1'));
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[3]}.0/24`)), '{"nodeName":');
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[4]}.0/24`)), value('good', '198.18.0.22'));
    // WireGuard keys: one lease carries this node's own, and two nodes carry one key (a copied key file): the later is refused.
    const ownKey = Buffer.alloc(32, 1).toString('base64');
    const copied = Buffer.alloc(32, 2).toString('base64');
    watcher.setEncryption({ wireguard: true, plaintextRefused: false }, ownKey);
    const keyed = (name: string, publicIp: string, wireguardPublicKey: string) => encodeSubnetLease({ nodeName: name, publicIp, port: 4790, vni: 1, version: 't', engine: 'js', instance: name, wireguardPublicKey, wireguardPort: 51820 });
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[5]}.0/24`)), keyed('mine', '198.18.0.24', ownKey));
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[6]}.0/24`)), keyed('first', '198.18.0.25', copied));
    await clock.advance(0);
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[7]}.0/24`)), keyed('copy', '198.18.0.26', copied));
    await clock.advance(0);
    expect(tables.at(-1)!.peers.map((p) => p.node).sort()).toEqual(['first', 'good']);
    expect(watcher.ignoredByReason()).toEqual({ invalid: 1, outside_network: 1, subnet_length: 1, public_ip_in_network: 1, own_address: 1, own_key: 1, shared_key: 1 });
    expect(watcher.ignored).toBe(7);
    const logged = records.filter((x) => x.event === 'lease_ignored');
    expect(logged.map((x) => x.reason).sort()).toEqual(['invalid', 'outside_network', 'own_address', 'own_key', 'public_ip_in_network', 'shared_key', 'subnet_length']);
    expect(logged.find((x) => x.reason === 'outside_network')?.err).toBe('subnet 198.18.200.0/24 of node outside is outside the cluster network 198.19.0.0/16');
    expect(logged.find((x) => x.reason === 'shared_key')?.err).toBe('node copy publishes the WireGuard key node first published first (a copied key file?)');
    // A re-list finds the same and logs nothing new; a fixed lease leaves the count.
    watcher.resyncNow('test');
    await clock.advance(0);
    await clock.advance(0);
    expect(records.filter((x) => x.event === 'lease_ignored')).toHaveLength(7);
    store.put(subnetKey(PREFIX, parseCidr(`198.19.${free[1]}.0/24`)), value('looping', '198.18.0.23'));
    await clock.advance(0);
    expect(watcher.ignoredByReason().public_ip_in_network).toBe(0);
    expect(tables.at(-1)!.peers.map((p) => p.node).sort()).toEqual(['first', 'good', 'looping']);
  });
});
