// The in-memory twin of the etcd registry, for tests: a MemoryStore plays
// the etcd server (a global revision, per-key create and mod revisions,
// compare-and-write transactions, TTL leases expiring on the clock seam,
// watch history and compaction, an injectable outage) and each
// MemoryRegistry is one client of it, failing with the etcd registry's codes.

import type { Clock, Timer } from '../clock.js';
import { WeftError, errorMessage } from '../errors.js';
import type { Cidr } from '../net/ipv4.js';
import { type StoredEntry, deleteEvent, leaseEntries, putEvent, watchBroken } from './entries.js';
import { configKey, subnetKey, subnetsPrefix } from './keys.js';
import { grantedTtl, writeConfig, writeOnFreshLease } from './steps.js';
import type { LeaseListing, LeaseRecord, LeaseWatch, LeaseWatchHandlers, Registry } from './registry.js';
import { type NetworkConfig, type SubnetLease, decodeNetworkConfig, encodeNetworkConfig, encodeSubnetLease } from './schema.js';

/** A key as the store holds it (etcd's mvccpb.KeyValue, the parts weft reads). */
interface StoredKey {
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly lease: string;
}

/** One change in the store's history: what a watch replays and delivers. */
type Change = { readonly type: 'put'; readonly key: string; readonly kv: StoredKey; readonly revision: number } | { readonly type: 'delete'; readonly key: string; readonly revision: number };

interface StoreLease {
  readonly ttlS: number;
  /** Wall time (clock.now()) at which it expires unless kept alive. */
  deadlineMs: number;
  readonly keys: Set<string>;
}

/** A watch as the store sees it: cut while the store is unreachable, and broken once reached again. */
interface StoreWatch {
  readonly prefix: string;
  readonly deliver: (c: Change) => void;
  readonly broken: (reason: string) => void;
  cut: boolean;
  closed: boolean;
}

/** A watch, for its client: closed by it, or cut off with it (a partition of one client). */
export interface StoreWatchHandle {
  close(): void;
  cut(on: boolean): void;
}

/**
 * What a write transaction compares, as weft uses etcd's: the key's create
 * revision 0 (it does not exist), or its mod revision (unchanged since).
 * An absent key has both revisions 0, as in etcd.
 */
export type Compare = { readonly key: string; readonly createRevision: 0 } | { readonly key: string; readonly modRevision: number };

/** What it then does. */
export type Write = { readonly put: string; readonly value: string; readonly lease?: string } | { readonly delete: string };

/**
 * The server side: all state, and the etcd semantics weft relies on. Leases
 * expire on the clock: a timer set for the earliest deadline, and a check
 * at every request (so a wall-clock jump past a deadline is seen at once).
 */
export class MemoryStore {
  private rev = 1;
  private compacted = 0;
  private nextLeaseId = 1;
  private readonly kvs = new Map<string, StoredKey>();
  private readonly history: Change[] = [];
  private readonly leases = new Map<string, StoreLease>();
  private readonly watches = new Set<StoreWatch>();
  private down = false;
  private expiryTimer: Timer | undefined;

  constructor(readonly clock: Clock) {}

  /** Whether clients can reach the store. */
  get outage(): boolean {
    return this.down;
  }

  /**
   * Cuts every client off (true) or lets them back (false). While cut off,
   * every call fails with WEFT_ETCD_UNAVAILABLE, watches deliver nothing,
   * and leases go on expiring; once back, each watch open during the
   * outage breaks ("watch reconnected"), as the etcd client reports a
   * reconnect.
   */
  setOutage(down: boolean): void {
    if (down === this.down) return;
    this.down = down;
    for (const w of this.watches) this.cut(w, down);
  }

  /** Cuts a watch off (nothing delivered), or reconnects it: a reconnected watch ends, as the etcd registry reports one. */
  private cut(w: StoreWatch, on: boolean): void {
    if (on) w.cut = true;
    else if (w.cut) {
      w.closed = true;
      this.watches.delete(w);
      queueMicrotask(() => w.broken('watch reconnected'));
    }
  }

  /** Drops history before `revision` (default: the current one), as `etcdctl compact`. */
  compact(revision = this.rev): void {
    if (revision > this.rev) throw new Error(`compact ${revision}: beyond the current revision ${this.rev}`);
    this.compacted = Math.max(this.compacted, revision);
    const keep = this.history.findIndex((c) => c.revision >= this.compacted);
    this.history.splice(0, keep < 0 ? this.history.length : keep);
  }

  get(key: string): StoredKey | undefined {
    this.expire();
    return this.kvs.get(key);
  }

  /** Every key starting with `prefix`, in key order, and the revision read at. */
  range(prefix: string): { kvs: [string, StoredKey][]; revision: number } {
    this.expire();
    const kvs = [...this.kvs].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { kvs, revision: this.rev };
  }

  /** Applies `write` if `compare` holds; one new revision when it does. */
  txn(compare: Compare, write: Write): { succeeded: boolean; revision: number } {
    this.expire();
    const cur = this.kvs.get(compare.key);
    const holds = 'createRevision' in compare ? (cur?.createRevision ?? 0) === compare.createRevision : (cur?.modRevision ?? 0) === compare.modRevision;
    if (!holds) return { succeeded: false, revision: this.rev };
    if ('put' in write) {
      if (write.lease !== undefined && write.lease !== '0' && !this.leases.has(write.lease)) {
        throw new Error(`etcdserver: requested lease not found (${write.lease})`);
      }
      this.put(write.put, write.value, write.lease ?? '0');
    } else {
      this.rev++;
      this.remove(write.delete);
    }
    return { succeeded: true, revision: this.rev };
  }

  /** An unconditional put, in a revision of its own. */
  put(key: string, value: string, lease = '0'): number {
    this.expire();
    const old = this.kvs.get(key);
    if (old && old.lease !== '0') this.leases.get(old.lease)?.keys.delete(key);
    this.rev++;
    const kv: StoredKey = { value, createRevision: old?.createRevision ?? this.rev, modRevision: this.rev, lease };
    this.kvs.set(key, kv);
    if (lease !== '0') this.leases.get(lease)?.keys.add(key);
    this.record({ type: 'put', key, kv, revision: this.rev });
    return this.rev;
  }

  /** An unconditional delete (etcdctl del); false when the key did not exist. */
  delete(key: string): boolean {
    this.expire();
    if (!this.kvs.has(key)) return false;
    this.rev++;
    this.remove(key);
    return true;
  }

  grant(ttlS: number): string {
    this.expire();
    const id = String(this.nextLeaseId++);
    this.leases.set(id, { ttlS, deadlineMs: this.clock.now() + ttlS * 1000, keys: new Set() });
    this.scheduleExpiry();
    return id;
  }

  /** Ends a lease and deletes its keys, all in one revision; unknown IDs are ignored. */
  revoke(id: string): void {
    this.expire();
    this.end(id);
  }

  /** Restarts a lease's TTL: the TTL, or 0 when the lease is unknown (expired, revoked), as etcd answers a keepalive. */
  keepAlive(id: string): number {
    this.expire();
    const l = this.leases.get(id);
    if (!l) return 0;
    l.deadlineMs = this.clock.now() + l.ttlS * 1000;
    this.scheduleExpiry();
    return l.ttlS;
  }

  /** Whole seconds left on a lease (rounded down, as etcd), or -1 when unknown. */
  timeToLive(id: string): number {
    this.expire();
    const l = this.leases.get(id);
    return l ? Math.max(0, Math.floor((l.deadlineMs - this.clock.now()) / 1000)) : -1;
  }

  /**
   * Watches keys under `prefix` from `fromRevision` (inclusive): replays the
   * history from there, then delivers live changes, each in a microtask of
   * its own and in revision order. A revision already compacted breaks the
   * watch at once, as etcd cancels it.
   */
  watch(prefix: string, fromRevision: number, deliver: (c: Change) => void, broken: (reason: string) => void): StoreWatchHandle {
    this.expire();
    const w: StoreWatch = { prefix, deliver, broken, cut: false, closed: false };
    const handle: StoreWatchHandle = {
      close: () => {
        w.closed = true;
        this.watches.delete(w);
      },
      cut: (on) => this.cut(w, on),
    };
    if (fromRevision < this.compacted) {
      const compacted = this.compacted;
      w.closed = true;
      queueMicrotask(() => broken(`required revision ${fromRevision} has been compacted (at ${compacted})`));
      return handle;
    }
    for (const c of this.history) if (c.revision >= fromRevision && c.key.startsWith(prefix)) this.send(w, c);
    this.watches.add(w);
    return handle;
  }

  private send(w: StoreWatch, c: Change): void {
    queueMicrotask(() => {
      if (!w.closed && !w.cut) w.deliver(c);
    });
  }

  private record(c: Change): void {
    this.history.push(c);
    for (const w of this.watches) if (!w.cut && c.key.startsWith(w.prefix)) this.send(w, c);
  }

  /** Deletes a key at the current revision (the caller moved it on). */
  private remove(key: string): void {
    const old = this.kvs.get(key);
    if (!old) return;
    if (old.lease !== '0') this.leases.get(old.lease)?.keys.delete(key);
    this.kvs.delete(key);
    this.record({ type: 'delete', key, revision: this.rev });
  }

  private end(id: string): void {
    const l = this.leases.get(id);
    if (!l) return;
    this.leases.delete(id);
    if (l.keys.size === 0) return;
    this.rev++;
    for (const key of [...l.keys].sort()) this.remove(key);
  }

  /** Ends every lease past its deadline, earliest first. */
  private expire(): void {
    const now = this.clock.now();
    const due = [...this.leases].filter(([, l]) => l.deadlineMs <= now).sort(([, a], [, b]) => a.deadlineMs - b.deadlineMs);
    for (const [id] of due) this.end(id);
    if (due.length > 0) this.scheduleExpiry();
  }

  private scheduleExpiry(): void {
    this.clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    let next = Infinity;
    for (const l of this.leases.values()) next = Math.min(next, l.deadlineMs);
    if (next === Infinity) return;
    this.expiryTimer = this.clock.setTimeout(() => this.expire(), Math.max(0, next - this.clock.now()));
    this.expiryTimer.unref();
  }
}

function stored(key: string, kv: StoredKey): StoredEntry {
  return { key, value: kv.value, lease: kv.lease, modRevision: String(kv.modRevision) };
}

/** A client of a MemoryStore, under its own key prefix, with the etcd registry's contract. */
export class MemoryRegistry implements Registry {
  lastContactMs: number | undefined;
  reachable = false;
  private closed = false;
  private partitioned = false;
  private readonly watches = new Set<StoreWatchHandle>();

  constructor(
    private readonly store: MemoryStore,
    readonly prefix: string,
  ) {}

  /**
   * Runs one request against the store after a turn of the event loop's
   * microtasks (as a network round trip yields), failing as the etcd
   * registry does when the store is unreachable.
   */
  private async call<T>(what: string, fn: () => T): Promise<T> {
    await null;
    const unavailable = (why: string, cause?: unknown): WeftError =>
      new WeftError('WEFT_ETCD_UNAVAILABLE', `etcd memory: ${what}: ${why}`, { endpoints: ['memory'], what }, cause === undefined ? undefined : { cause });
    if (this.store.outage || this.partitioned || this.closed) {
      this.reachable = false;
      throw unavailable(this.closed ? 'client closed' : 'unreachable (injected outage)');
    }
    let result: T;
    try {
      result = fn();
    } catch (err) {
      // The store refused the request (a lease not found): the etcd registry reports such errors as this code too.
      throw unavailable(errorMessage(err), err);
    }
    this.lastContactMs = this.store.clock.now();
    this.reachable = true;
    return result;
  }

  /**
   * Cuts this client alone off from the store (a partition of one node), or
   * lets it back: its calls fail and its watches behave as in a store-wide
   * outage, while other clients go on.
   */
  setPartitioned(on: boolean): void {
    this.partitioned = on;
    for (const w of this.watches) w.cut(on);
  }

  async ping(): Promise<void> {
    await this.call(`ping (count ${configKey(this.prefix)})`, () => this.store.get(configKey(this.prefix)));
  }

  async getConfig(): Promise<NetworkConfig | undefined> {
    const key = configKey(this.prefix);
    const kv = await this.call(`get ${key}`, () => this.store.get(key));
    return kv === undefined ? undefined : decodeNetworkConfig(key, kv.value);
  }

  putConfig(cfg: NetworkConfig, force: boolean): Promise<'created' | 'unchanged' | 'replaced'> {
    const key = configKey(this.prefix);
    const text = encodeNetworkConfig(cfg);
    return writeConfig(key, text, force, {
      create: async () => (await this.call(`create ${key}`, () => this.store.txn({ key, createRevision: 0 }, { put: key, value: text }))).succeeded,
      read: async () => (await this.call(`get ${key}`, () => this.store.get(key)))?.value,
      overwrite: async () => void (await this.call(`put ${key}`, () => this.store.put(key, text))),
    });
  }

  async listLeases(): Promise<LeaseListing> {
    const { kvs, revision } = await this.call('list leases', () => this.store.range(subnetsPrefix(this.prefix)));
    return { ...leaseEntries(this.prefix, kvs.map(([k, kv]) => stored(k, kv))), revision: String(revision) };
  }

  async createLease(subnet: Cidr, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    const key = subnetKey(this.prefix, subnet);
    return this.writeOnFreshLease(`create ${key}`, subnet, key, { key, createRevision: 0 }, value, ttlS);
  }

  async replaceLease(prev: LeaseRecord, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    const rec = await this.writeOnFreshLease(`replace ${prev.key}`, prev.subnet, prev.key, { key: prev.key, modRevision: Number(prev.modRevision) }, value, ttlS);
    if (rec) await this.revokeLease(prev.etcdLease);
    return rec;
  }

  private writeOnFreshLease(what: string, subnet: Cidr, key: string, compare: Compare, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    return writeOnFreshLease(subnet, key, value, {
      grant: () => this.call('grant lease', () => this.store.grant(ttlS)),
      write: async (id) => {
        const res = await this.call(what, () => this.store.txn(compare, { put: key, value: encodeSubnetLease(value), lease: id }));
        return { succeeded: res.succeeded, revision: String(res.revision) };
      },
      revoke: (id) => this.revokeLease(id),
    });
  }

  async renewLease(rec: LeaseRecord): Promise<number> {
    return grantedTtl(rec, await this.call(`renew lease of ${rec.key}`, () => this.store.keepAlive(rec.etcdLease)));
  }

  async leaseTtl(rec: LeaseRecord): Promise<number> {
    if (rec.etcdLease === '0') return -1;
    return this.call(`ttl of ${rec.key}`, () => this.store.timeToLive(rec.etcdLease));
  }

  async releaseLease(rec: LeaseRecord): Promise<void> {
    await this.call(`release ${rec.key}`, () => {
      this.store.txn({ key: rec.key, modRevision: Number(rec.modRevision) }, { delete: rec.key });
      this.store.revoke(rec.etcdLease);
    });
  }

  async revokeLease(id: string): Promise<void> {
    if (id === '0') return;
    await this.call('revoke lease', () => this.store.revoke(id)).catch(() => undefined);
  }

  async watchLeases(fromRevision: string, h: LeaseWatchHandlers): Promise<LeaseWatch> {
    let done = false;
    const watch = await this.call('watch leases', () => {
      const w: StoreWatchHandle = this.store.watch(
        subnetsPrefix(this.prefix),
        Number(fromRevision),
        (c) => {
          if (done) return;
          const ev = c.type === 'put' ? putEvent(this.prefix, stored(c.key, c.kv)) : deleteEvent(this.prefix, c.key, String(c.revision));
          if (ev) h.onEvent(ev);
        },
        // Always in a later microtask than this registration: w is set.
        (reason) => {
          this.watches.delete(w);
          if (done) return;
          done = true;
          h.onBroken(watchBroken(reason));
        },
      );
      this.watches.add(w);
      return w;
    });
    return {
      cancel: async () => {
        done = true;
        watch.close();
        this.watches.delete(watch);
      },
    };
  }

  close(): void {
    this.closed = true;
  }
}
