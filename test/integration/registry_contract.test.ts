// The Registry contract, one suite run against both implementations: the
// etcd registry on a real etcd of its own (so compaction and a frozen etcd
// touch no other test) and the in-memory twin on a manual clock, down to the
// outcome of lease policy over each. The twin may stand in for etcd in tests
// only as far as this suite holds for both.

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../src/clock.js';
import { type WeftError, isWeftError } from '../../src/errors.js';
import { formatCidr, parseCidr } from '../../src/net/ipv4.js';
import { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import { subnetKey } from '../../src/registry/keys.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import { MemoryRegistry, MemoryStore } from '../../src/registry/memory_registry.js';
import type { LeaseEvent, Registry } from '../../src/registry/registry.js';
import type { SubnetLease } from '../../src/registry/schema.js';
import { type EtcdServer, startEtcd } from '../harness/etcd_server.js';
import { freeze, thaw } from '../harness/freeze.js';
import { ManualClock } from '../harness/manual_clock.js';
import { captureLogger, config, uniquePrefix } from '../harness/registry_fixture.js';
import { sleep, until } from '../harness/until.js';

/** One implementation under test, with the levers the suite pulls on its store. */
interface Subject {
  readonly clock: Clock;
  /** A client under `prefix`; listPageSize where the implementation pages. */
  open(prefix: string, listPageSize?: number): Registry;
  /** Lets `ms` of the store's time pass. */
  elapse(ms: number): Promise<void>;
  /** Writes or deletes a key behind weft's back, as etcdctl would. */
  putRaw(key: string, value: string): Promise<void>;
  deleteRaw(key: string): Promise<void>;
  /** Drops the history before the current revision. */
  compact(): Promise<void>;
  /** Cuts clients off from the store, or lets them back. */
  outage(on: boolean): Promise<void>;
  /** Waits for `p`, letting the store's time run meanwhile (backoffs sleep on the clock). */
  settle<T>(p: Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A short TTL that a real etcd grants as asked (its floor is 1.5 s with the default election timeout). */
const TTL_S = 3;
/** The etcd registry's per-call deadline here: a frozen etcd fails calls this fast. */
const CALL_TIMEOUT_MS = 1000;

async function etcdSubject(): Promise<Subject> {
  const server: EtcdServer = await startEtcd();
  const raw = new Etcd3({ hosts: [server.endpoint] });
  const opened: EtcdRegistry[] = [];
  let frozen = false;
  return {
    clock: systemClock,
    open: (prefix, listPageSize) => {
      const r = new EtcdRegistry({ endpoints: [server.endpoint], prefix, callTimeoutMs: CALL_TIMEOUT_MS, ...(listPageSize ? { listPageSize } : {}) });
      opened.push(r);
      return r;
    },
    elapse: (ms) => sleep(ms),
    putRaw: async (key, value) => void (await raw.put(key).value(value).exec()),
    deleteRaw: async (key) => void (await raw.delete().key(key).exec()),
    compact: async () => {
      const { header } = await raw.kv.range({ key: Buffer.from('/'), limit: 1 });
      await raw.kv.compact({ revision: header.revision, physical: true });
    },
    outage: async (on) => {
      if (on) await freeze(server.pid);
      else thaw(server.pid);
      frozen = on;
    },
    settle: (p) => p,
    close: async () => {
      if (frozen) thaw(server.pid);
      for (const r of opened) r.close();
      raw.close();
      await server.stop();
    },
  };
}

function memorySubject(): Subject {
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  return {
    clock,
    open: (prefix) => new MemoryRegistry(store, prefix),
    elapse: (ms) => clock.advance(ms),
    putRaw: async (key, value) => void store.put(key, value),
    deleteRaw: async (key) => void store.delete(key),
    compact: async () => store.compact(),
    outage: async (on) => store.setOutage(on),
    settle: async (p) => {
      let done = false;
      void p.then(
        () => (done = true),
        () => (done = true),
      );
      while (!done) await clock.advance(10);
      return p;
    },
    close: async () => undefined,
  };
}

const lease = (node: string, ip = '198.18.0.1'): SubnetLease => ({ nodeName: node, publicIp: ip, port: 4790, vni: 1, version: 't', engine: 'js', instance: `${node}-i` });

/** A watch whose events are kept as "type subnet node@revision" lines. */
async function watchAll(r: Registry, fromRevision: string): Promise<{ events: string[]; broken: WeftError[]; cancel: () => Promise<void> }> {
  const events: string[] = [];
  const broken: WeftError[] = [];
  const line = (ev: LeaseEvent): string =>
    ev.type === 'put' ? `put ${formatCidr(ev.record.subnet)} ${ev.record.lease.nodeName}@${ev.revision}` : ev.type === 'delete' ? `delete ${formatCidr(ev.subnet)}@${ev.revision}` : `invalid ${ev.entry.key}@${ev.revision}`;
  const w = await r.watchLeases(fromRevision, { onEvent: (ev) => events.push(line(ev)), onBroken: (err) => broken.push(err) });
  return { events, broken, cancel: () => w.cancel() };
}

const next = (rev: string): string => (BigInt(rev) + 1n).toString();

describe.each([
  ['etcd (real, on loopback)', etcdSubject],
  ['memory twin (manual clock)', async () => memorySubject()],
])('Registry contract: %s', (_name, make) => {
  let s: Subject;
  beforeAll(async () => {
    s = await make();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('config: created once, an equal one unchanged, a different one refused without force and replaced with it', async () => {
    const r = s.open(uniquePrefix('cfg'));
    expect(await r.getConfig()).toBeUndefined();
    expect(await r.putConfig(config(), false)).toBe('created');
    expect(await r.putConfig(config(), false)).toBe('unchanged');
    await expect(r.putConfig(config('198.19.0.0/17'), false)).rejects.toMatchObject({ code: 'WEFT_CONFIG_CONFLICT' });
    expect(await r.putConfig(config('198.19.0.0/17'), true)).toBe('replaced');
    expect(formatCidr((await r.getConfig())!.network)).toBe('198.19.0.0/17');
    await r.ping();
    expect(r.reachable).toBe(true);
    expect(r.lastContactMs).toBeLessThanOrEqual(s.clock.now());
  });

  it('create conflicts on an existing key; each write is a new revision; a listing is at the last one', async () => {
    const r = s.open(uniquePrefix('create'));
    const a = await r.createLease(parseCidr('198.19.1.0/24'), lease('a'), 60);
    expect(a).toBeDefined();
    expect(await r.createLease(parseCidr('198.19.1.0/24'), lease('b'), 60)).toBeUndefined();
    const b = await r.createLease(parseCidr('198.19.2.0/24'), lease('b'), 60);
    expect(BigInt(b!.modRevision)).toBeGreaterThan(BigInt(a!.modRevision));
    const listing = await r.listLeases();
    expect(listing.revision).toBe(b!.modRevision);
    expect(listing.records.map((x) => `${formatCidr(x.subnet)} ${x.lease.nodeName} ${x.modRevision}`)).toEqual([
      `198.19.1.0/24 a ${a!.modRevision}`,
      `198.19.2.0/24 b ${b!.modRevision}`,
    ]);
    expect(listing.records.map((x) => x.etcdLease)).toEqual([a!.etcdLease, b!.etcdLease]);
  });

  it('replace succeeds only from the current mod revision, revoking the old lease; a stale release leaves the newer value', async () => {
    const r = s.open(uniquePrefix('replace'));
    const first = (await r.createLease(parseCidr('198.19.3.0/24'), lease('n'), 60))!;
    const second = await r.replaceLease(first, lease('n', '198.18.0.2'), 60);
    expect(second).toBeDefined();
    expect(second!.etcdLease).not.toBe(first.etcdLease);
    expect(await r.leaseTtl(first)).toBe(-1);
    await expect(r.renewLease(first)).rejects.toMatchObject({ code: 'WEFT_LEASE_LOST' });
    // first's mod revision is stale now.
    expect(await r.replaceLease(first, lease('n', '198.18.0.3'), 60)).toBeUndefined();
    await r.releaseLease(first);
    const left = (await r.listLeases()).records;
    expect(left.map((x) => [x.lease.publicIp, x.modRevision])).toEqual([['198.18.0.2', second!.modRevision]]);
    await r.releaseLease(second!);
    expect((await r.listLeases()).records).toEqual([]);
    expect(await r.leaseTtl(second!)).toBe(-1);
  });

  it('a lease not renewed expires after its TTL and its key vanishes with a delete event; a renewed one stays', async () => {
    const r = s.open(uniquePrefix('ttl'));
    const gone = (await r.createLease(parseCidr('198.19.4.0/24'), lease('gone'), TTL_S))!;
    const kept = (await r.createLease(parseCidr('198.19.5.0/24'), lease('kept'), TTL_S))!;
    const w = await watchAll(r, next(kept.modRevision));
    for (let i = 0; i < 3; i++) {
      await s.elapse(1500);
      expect(await r.renewLease(kept)).toBe(TTL_S);
    }
    const ttl = await r.leaseTtl(kept);
    expect(ttl).toBeGreaterThanOrEqual(TTL_S - 1);
    expect(ttl).toBeLessThanOrEqual(TTL_S);
    expect((await r.listLeases()).records.map((x) => x.lease.nodeName)).toEqual(['kept']);
    await until('the expiry delete', () => w.events.length > 0);
    expect(w.events).toEqual([expect.stringMatching(/^delete 198\.19\.4\.0\/24@\d+$/)]);
    expect(await r.leaseTtl(gone)).toBe(-1);
    const lost = await r.renewLease(gone).catch((e: unknown) => e);
    expect(isWeftError(lost, 'WEFT_LEASE_LOST')).toBe(true);
    await w.cancel();
  }, 20_000);

  it('a watch replays from its revision (inclusive), then delivers live changes in order, invalid values as such', async () => {
    const prefix = uniquePrefix('watch');
    const r = s.open(prefix);
    const a = (await r.createLease(parseCidr('198.19.6.0/24'), lease('a'), 60))!;
    const b = (await r.createLease(parseCidr('198.19.7.0/24'), lease('b'), 60))!;
    await r.releaseLease(a);
    const w = await watchAll(r, b.modRevision);
    await until('the replay', () => w.events.length >= 2);
    const c = (await r.createLease(parseCidr('198.19.8.0/24'), lease('c'), 60))!;
    const badKey = subnetKey(prefix, parseCidr('198.19.9.0/24'));
    await s.putRaw(badKey, '{"nodeName":');
    await until('the live events', () => w.events.length >= 4);
    const released = BigInt(b.modRevision) + 1n;
    expect(w.events).toEqual([
      `put 198.19.7.0/24 b@${b.modRevision}`,
      `delete 198.19.6.0/24@${released}`,
      `put 198.19.8.0/24 c@${c.modRevision}`,
      `invalid ${badKey}@${BigInt(c.modRevision) + 1n}`,
    ]);
    expect(w.broken).toEqual([]);
    const listing = await r.listLeases();
    expect(listing.invalid.map((x) => [x.key, x.error.code])).toEqual([[badKey, 'WEFT_VALUE_INVALID']]);
    await w.cancel();
    await s.deleteRaw(badKey);
    await sleep(100);
    expect(w.events).toHaveLength(4);
  });

  it('a watch from a compacted revision is established, delivers nothing and breaks with WEFT_WATCH_BROKEN; from the compaction revision it replays', async () => {
    const r = s.open(uniquePrefix('compact'));
    const a = (await r.createLease(parseCidr('198.19.10.0/24'), lease('a'), 60))!;
    const b = (await r.createLease(parseCidr('198.19.11.0/24'), lease('b'), 60))!;
    await s.compact();
    const stale = await watchAll(r, a.modRevision);
    await until('the broken watch', () => stale.broken.length > 0);
    expect(stale.broken.map((e) => e.code)).toEqual(['WEFT_WATCH_BROKEN']);
    expect(stale.events).toEqual([]);
    await stale.cancel();
    const listing = await r.listLeases();
    const fresh = await watchAll(r, listing.revision);
    await until('the replay from the compaction revision', () => fresh.events.length > 0);
    expect(fresh.events).toEqual([`put 198.19.11.0/24 b@${b.modRevision}`]);
    await sleep(100);
    expect(fresh.broken).toEqual([]);
    await fresh.cancel();
  });

  it('a lease is renewed through any client of the store, as etcd leases are global', async () => {
    const prefix = uniquePrefix('global');
    const a = s.open(prefix);
    const b = s.open(prefix);
    const rec = (await a.createLease(parseCidr('198.19.12.0/24'), lease('n'), TTL_S))!;
    await s.elapse(2000);
    expect(await b.renewLease(rec)).toBe(TTL_S);
    await s.elapse(2000);
    expect((await a.listLeases()).records.map((x) => x.etcdLease)).toEqual([rec.etcdLease]);
  });

  it('lease policy comes out the same: 10 racing nodes that each take the lowest free subnet end on the 10 lowest; a restart keeps its subnet', async () => {
    const prefix = uniquePrefix('race');
    const manager = (name: string, instance = `${name}-1`): LeaseManager =>
      new LeaseManager({
        registry: s.open(prefix),
        config: config('198.19.0.0/24', 28),
        value: { ...lease(name), instance },
        ttlS: 60,
        stateDir: undefined,
        log: captureLogger().log,
        clock: s.clock,
        random: () => 0,
      });
    const recs = await s.settle(Promise.all(Array.from({ length: 10 }, (_, i) => manager(`n${i}`).acquire())));
    expect(recs.map((r) => formatCidr(r.subnet)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))).toEqual(Array.from({ length: 10 }, (_, i) => `198.19.0.${16 * (i + 1)}/28`));
    const again = await s.settle(manager('n3', 'n3-2').acquire());
    expect(again.subnet).toEqual(recs[3]!.subnet);
    expect((await s.open(prefix).listLeases()).records).toHaveLength(10);
  }, 30_000);

  it('lists every lease at one revision however small the page', async () => {
    const prefix = uniquePrefix('pages');
    const r = s.open(prefix, 2);
    const made = [];
    for (let i = 1; i <= 5; i++) made.push((await r.createLease(parseCidr(`198.19.${20 + i}.0/24`), lease(`n${i}`), 60))!);
    const listing = await r.listLeases();
    expect(listing.records.map((x) => x.lease.nodeName)).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(listing.revision).toBe(made.at(-1)!.modRevision);
  });

  it('while the store cannot be reached every call fails with WEFT_ETCD_UNAVAILABLE; afterwards the data is intact and a watch open across it is not left silently stuck', async () => {
    const r = s.open(uniquePrefix('outage'));
    const rec = (await r.createLease(parseCidr('198.19.30.0/24'), lease('n'), 60))!;
    const w = await watchAll(r, next(rec.modRevision));
    await s.outage(true);
    try {
      for (const call of [() => r.ping(), () => r.listLeases(), () => r.renewLease(rec)]) {
        const err = await call().catch((e: unknown) => e);
        expect(isWeftError(err, 'WEFT_ETCD_UNAVAILABLE')).toBe(true);
      }
      expect(r.reachable).toBe(false);
      // Revoking never fails: an unrevoked lease expires.
      await r.revokeLease('12345');
    } finally {
      await s.outage(false);
    }
    await until('the store answers again', () => r.ping().then(() => true, () => false), 15_000, 200);
    expect(r.reachable).toBe(true);
    expect((await r.listLeases()).records.map((x) => x.lease.nodeName)).toEqual(['n']);
    expect(await r.renewLease(rec)).toBe(60);
    // Either the watch goes on delivering or it says it broke (weft re-lists then).
    await r.createLease(parseCidr('198.19.31.0/24'), lease('m'), 60);
    await until('the watch delivers or breaks', () => w.events.length > 0 || w.broken.length > 0);
    if (w.broken.length > 0) expect(w.broken[0]!.code).toBe('WEFT_WATCH_BROKEN');
    else expect(w.events).toEqual([expect.stringMatching(/^put 198\.19\.31\.0\/24 m@\d+$/)]);
    await w.cancel();
  }, 30_000);
});
