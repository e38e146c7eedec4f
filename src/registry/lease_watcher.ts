// Follows every node's lease in etcd and turns the set into route tables:
// list, then watch from the listed revision; re-list whenever the watch
// breaks and periodically, since a watch can die silently.

import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import { FEATURE_TCP_CSUM_PARTIAL } from '../constants.js';
import { errorMessage } from '../errors.js';
import { type Cidr, cidrEquals, formatCidr, parseIp } from '../net/ipv4.js';
import { NO_ENCRYPTION, type Peer, RouteTable, type TableEncryption } from '../routes/route_table.js';
import { DEFAULT_WG_PORT } from '../wireguard/constants.js';
import { parseKey } from '../wireguard/keys.js';
import { IGNORED_REASONS, type IgnoredReason, type LeaseProblem, leaseProblem } from './lease_problem.js';
import type { LeaseEvent, LeaseRecord, LeaseWatch, Registry } from './registry.js';
import type { NetworkConfig } from './schema.js';

export interface LeaseWatcherEvents {
  /** A new table, built whole, to hand to the dataplane. */
  onTable(table: RouteTable): void;
  /** This node's own subnet key was deleted in etcd. */
  onSelfDeleted(): void;
  /** This node's own subnet key now names another node, or another weftd under our node name. */
  onSelfTaken(rec: LeaseRecord): void;
}

export interface LeaseWatcherOptions {
  readonly registry: Registry;
  readonly config: NetworkConfig;
  readonly self: Cidr;
  readonly nodeName: string;
  /** This weftd's instance id, as written in its lease. */
  readonly instance: string;
  /** This node's underlay address: no other lease may name it. */
  readonly publicIp: number;
  readonly log: Logger;
  readonly resyncIntervalMs: number;
  readonly events: LeaseWatcherEvents;
  /** What the periodic resync and the retry backoff run on. */
  readonly clock: Clock;
}

/** Retry delays after a failed re-list: doubling from 500 ms to 30 s (at most the resync interval). */
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export class LeaseWatcher {
  private readonly o: LeaseWatcherOptions;
  private readonly leases = new Map<number, LeaseRecord>();
  private watch: LeaseWatch | undefined;
  private resyncTimer: Timer | undefined;
  private periodic: Timer | undefined;
  private backoffMs = BACKOFF_MIN_MS;
  private closed = false;
  private published: RouteTable | undefined;
  private syncing = false;
  /** Why the last re-list failed, until one succeeds. */
  private failing: string | undefined;
  /** Leases left out of the table, by key, with the reason (logged once each). */
  private readonly ignoredLeases = new Map<string, LeaseProblem>();
  /**
   * While watch events wait to be published together, each subnet they
   * touched with its lease as last published (undefined: it had none): one
   * etcd watch response carries many events (a mass join), and one table
   * per response, not per event, keeps a join of N nodes at N tables per
   * node instead of N squared; and only what changed is compared.
   */
  private unpublished: Map<number, LeaseRecord | undefined> | undefined;
  /** Each lease's peer as routed, parsed once per value (tables are rebuilt from every lease on each change). */
  private readonly peerOf = new WeakMap<LeaseRecord, Peer>();
  /** What this node's encryption setting makes of the peers (route_table.ts), and its own WireGuard public key (base64). */
  private encryption: TableEncryption = NO_ENCRYPTION;
  private ownKey = '';
  resyncs = 0;

  constructor(opts: LeaseWatcherOptions) {
    this.o = opts;
  }

  /** Lists and starts watching; rejects if the first listing fails. */
  async start(): Promise<void> {
    await this.sync();
    this.periodic = this.o.clock.setInterval(() => this.resyncSoon('periodic'), this.o.resyncIntervalMs);
    this.periodic.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.o.clock.clearTimeout(this.resyncTimer);
    this.o.clock.clearTimeout(this.periodic);
    await this.watch?.cancel();
  }

  /** How many leases are left out of the table now, for any reason (lease_problem.ts). */
  get ignored(): number {
    return this.ignoredLeases.size;
  }

  /** The leases left out of the table now, counted by reason; every reason present. */
  ignoredByReason(): Record<IgnoredReason, number> {
    const out = Object.fromEntries(IGNORED_REASONS.map((r) => [r, 0])) as Record<IgnoredReason, number>;
    for (const p of this.ignoredLeases.values()) out[p.reason]++;
    return out;
  }

  /** Why re-listing the leases fails, while it does (the table is then the last one that listed): undefined when the last listing went through. */
  get resyncFailure(): string | undefined {
    return this.failing;
  }

  /** The peers of the last table published (status requests read this; they build nothing). */
  peers(): readonly Peer[] {
    return this.published?.peers ?? [];
  }

  /**
   * This node's encryption changed (the network config, or its key): every
   * peer's WireGuard flag is decided anew, and a lease naming `ownKey`
   * (base64) is refused as one naming our address is.
   */
  setEncryption(encryption: TableEncryption, ownKey: string): void {
    this.encryption = encryption;
    this.ownKey = ownKey;
    if (!this.published || this.closed) return;
    const before = new Map(this.ignoredLeases);
    const sameKey = this.byWireguardKey();
    for (const r of this.leases.values()) {
      this.ignoredLeases.delete(r.key);
      this.refuseIfUnusable(r, before, sameKey);
    }
    this.publish();
  }

  private async sync(): Promise<void> {
    this.syncing = true;
    try {
      await this.watch?.cancel();
      this.watch = undefined;
      const listing = await this.o.registry.listLeases();
      // Closed meanwhile: hand nothing more to the (closed) dataplane or keeper.
      if (this.closed) return;
      const before = this.lastPublished();
      this.unpublished = undefined;
      this.leases.clear();
      const wasIgnored = new Map(this.ignoredLeases);
      this.ignoredLeases.clear();
      for (const bad of listing.invalid) this.ignore(bad.key, { reason: 'invalid', message: bad.error.message }, wasIgnored);
      for (const r of listing.records) this.leases.set(r.subnet.base, r);
      if (!this.leases.has(this.o.self.base)) this.o.events.onSelfDeleted();
      this.checkSelf();
      const sameKey = this.byWireguardKey();
      for (const r of this.leases.values()) this.refuseIfUnusable(r, wasIgnored, sameKey);
      this.logDiff(new Set([...before.keys(), ...this.leases.keys()]), before);
      this.publish();
      if (this.closed) return;
      const watch = await this.o.registry.watchLeases((BigInt(listing.revision) + 1n).toString(), {
        onEvent: (ev) => this.apply(ev),
        onBroken: (err) => this.resyncSoon(err.message),
      });
      // Closed while the watch was being created: close() could not cancel it.
      if (this.closed) {
        await watch.cancel();
        return;
      }
      this.watch = watch;
      this.backoffMs = BACKOFF_MIN_MS;
      this.failing = undefined;
    } finally {
      this.syncing = false;
    }
  }

  /** etcd answers again after an outage: re-list now instead of at the next backed-off retry. */
  resyncNow(reason: string): void {
    if (this.closed || this.syncing) return;
    this.o.clock.clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    this.backoffMs = BACKOFF_MIN_MS;
    this.resyncSoon(reason, 0);
  }

  private resyncSoon(reason: string, delayMs?: number): void {
    if (this.closed || this.syncing || this.resyncTimer) return;
    const delay = delayMs ?? (reason === 'periodic' ? 0 : this.backoffMs);
    this.resyncTimer = this.o.clock.setTimeout(() => {
      this.resyncTimer = undefined;
      this.resyncs++;
      this.o.log.info({ event: 'watch_resync', reason }, 'resyncing leases');
      this.sync().catch((err) => {
        if (this.closed) return;
        this.failing = errorMessage(err);
        // Never wait longer than a periodic resync would: after an outage the
        // table (and nodes that joined meanwhile) comes back within that.
        this.backoffMs = Math.min(BACKOFF_MAX_MS, this.o.resyncIntervalMs, this.backoffMs * 2);
        this.o.log.warn({ event: 'watch_resync_failed', err: errorMessage(err), retry_ms: this.backoffMs }, 'lease resync failed; keeping the last table');
        this.resyncSoon('retry');
      });
    }, delay);
    this.resyncTimer.unref();
  }

  private apply(ev: LeaseEvent): void {
    if (this.unpublished === undefined) {
      this.unpublished = new Map();
      queueMicrotask(() => this.publishEvents());
    }
    if (ev.type === 'invalid') {
      // The key's old value, if any, no longer stands: route nothing to it.
      this.dropKey(ev.entry.key);
      this.ignore(ev.entry.key, { reason: 'invalid', message: ev.entry.error.message });
    } else if (ev.type === 'put') {
      this.ignoredLeases.delete(ev.record.key);
      this.touch(ev.record.subnet.base);
      this.leases.set(ev.record.subnet.base, ev.record);
      this.refuseIfUnusable(ev.record);
    } else {
      this.ignoredLeases.delete(ev.key);
      this.touch(ev.subnet.base);
      this.leases.delete(ev.subnet.base);
    }
    if (ev.type === 'delete' && cidrEquals(ev.subnet, this.o.self)) this.o.events.onSelfDeleted();
    this.checkSelf();
  }

  /** Notes subnet `base`'s lease as last published, before an event changes it. */
  private touch(base: number): void {
    if (this.unpublished && !this.unpublished.has(base)) this.unpublished.set(base, this.leases.get(base));
  }

  /** The leases as last published: the current ones with what unpublished events changed put back. */
  private lastPublished(): Map<number, LeaseRecord> {
    const before = new Map(this.leases);
    for (const [base, old] of this.unpublished ?? []) {
      if (old) before.set(base, old);
      else before.delete(base);
    }
    return before;
  }

  /** Publishes what the events since the last table changed (nothing when a re-list did it meanwhile, or once closed). */
  private publishEvents(): void {
    const touched = this.unpublished;
    this.unpublished = undefined;
    if (touched === undefined || this.closed) return;
    const before = new Map<number, LeaseRecord>();
    for (const [base, old] of touched) if (old) before.set(base, old);
    this.logDiff(touched.keys(), before);
    if (!this.published) return this.publish();
    // Out with each touched subnet's peer as published (under its own length:
    // a lease of another length at the same base replaces it), in with what
    // is usable now.
    const removed: Cidr[] = [];
    const added: Peer[] = [];
    for (const base of touched.keys()) {
      const old = before.get(base);
      if (old) removed.push(old.subnet);
      const r = this.leases.get(base);
      if (r && this.usable(r)) added.push(this.peer(r));
    }
    this.published = this.published.with(removed, added);
    this.o.events.onTable(this.published);
  }

  private checkSelf(): void {
    const mine = this.leases.get(this.o.self.base);
    if (mine && (mine.lease.nodeName !== this.o.nodeName || mine.lease.instance !== this.o.instance)) this.o.events.onSelfTaken(mine);
  }

  private dropKey(key: string): void {
    for (const [base, r] of this.leases) {
      if (r.key !== key) continue;
      this.touch(base);
      this.leases.delete(base);
    }
  }

  /** Records `key` as left out; logs it unless it was already (in `before`, or now) for the same reason. */
  private ignore(key: string, problem: LeaseProblem, before: ReadonlyMap<string, LeaseProblem> = this.ignoredLeases): void {
    const known = before.get(key)?.message === problem.message;
    this.ignoredLeases.set(key, problem);
    if (!known) this.o.log.error({ event: 'lease_ignored', key, reason: problem.reason, err: problem.message }, `ignoring lease ${key}: ${problem.message}`);
  }

  /**
   * Leaves out a lease no route may come from (lease_problem.ts); this
   * node's own is never routed, nor counted. `sameKey` is byWireguardKey()
   * of the leases now, for a pass over all of them.
   */
  private refuseIfUnusable(r: LeaseRecord, before?: ReadonlyMap<string, LeaseProblem>, sameKey?: ReadonlyMap<string, readonly LeaseRecord[]>): void {
    if (cidrEquals(r.subnet, this.o.self)) return;
    const problem = leaseProblem(r, this.o.config, this.o.publicIp, this.ownKey) ?? this.sharedKey(r, sameKey);
    if (problem) this.ignore(r.key, problem, before);
  }

  /** The leases carrying each WireGuard key, in the leases' order. */
  private byWireguardKey(): Map<string, LeaseRecord[]> {
    const out = new Map<string, LeaseRecord[]>();
    for (const r of this.leases.values()) {
      const key = r.lease.wireguardPublicKey;
      if (!key) continue;
      const group = out.get(key);
      if (group) group.push(r);
      else out.set(key, [r]);
    }
    return out;
  }

  /**
   * A lease carrying the WireGuard key another node's earlier lease already
   * carries (a copied key file): the later one is refused, as a second
   * weftd under one node name is. `sameKey` (byWireguardKey()) spares a
   * pass over all leases a scan of all of them for each.
   */
  private sharedKey(r: LeaseRecord, sameKey?: ReadonlyMap<string, readonly LeaseRecord[]>): LeaseProblem | undefined {
    const key = r.lease.wireguardPublicKey;
    if (!key) return undefined;
    for (const other of sameKey ? (sameKey.get(key) ?? []) : this.leases.values()) {
      if (other.key === r.key || other.lease.wireguardPublicKey !== key || other.lease.nodeName === r.lease.nodeName || this.ignoredLeases.has(other.key)) continue;
      if (BigInt(other.modRevision) < BigInt(r.modRevision)) {
        return { reason: 'shared_key', message: `node ${r.lease.nodeName} publishes the WireGuard key node ${other.lease.nodeName} published first (a copied key file?)` };
      }
    }
    return undefined;
  }

  private usable(r: LeaseRecord): boolean {
    return !cidrEquals(r.subnet, this.o.self) && !this.ignoredLeases.has(r.key);
  }

  private table(): RouteTable {
    const peers: Peer[] = [];
    for (const r of this.leases.values()) if (this.usable(r)) peers.push(this.peer(r));
    return RouteTable.build(this.o.config.network, this.o.config.subnetLen, peers, this.encryption);
  }

  private peer(r: LeaseRecord): Peer {
    let peer = this.peerOf.get(r);
    if (!peer) {
      const wgKey = r.lease.wireguardPublicKey ? parseKey(r.lease.wireguardPublicKey) : undefined;
      peer = {
        subnet: r.subnet,
        node: r.lease.nodeName,
        ip: parseIp(r.lease.publicIp),
        port: r.lease.port,
        tcpCsumPartial: r.lease.features?.includes(FEATURE_TCP_CSUM_PARTIAL) === true,
        ...(wgKey ? { wgKey, wgPort: r.lease.wireguardPort || DEFAULT_WG_PORT } : {}),
      };
      this.peerOf.set(r, peer);
    }
    return peer;
  }

  private publish(): void {
    this.published = this.table();
    this.o.events.onTable(this.published);
  }

  /** Logs how the peers at `bases` differ from `before` (their leases as last published). */
  private logDiff(bases: Iterable<number>, before: ReadonlyMap<number, LeaseRecord>): void {
    for (const base of bases) {
      const r = this.leases.get(base);
      const old = before.get(base);
      if (r && this.usable(r)) {
        if (!old) this.o.log.info({ event: 'peer_added', subnet: formatCidr(r.subnet), node: r.lease.nodeName, public_ip: r.lease.publicIp }, 'peer added');
        else if (old.lease.publicIp !== r.lease.publicIp || old.lease.port !== r.lease.port || old.lease.nodeName !== r.lease.nodeName || old.lease.wireguardPublicKey !== r.lease.wireguardPublicKey) {
          this.o.log.info({ event: 'peer_changed', subnet: formatCidr(r.subnet), node: r.lease.nodeName, public_ip: r.lease.publicIp }, 'peer changed');
        }
      } else if (!r && old && this.usable(old)) {
        this.o.log.info({ event: 'peer_removed', subnet: formatCidr(old.subnet), node: old.lease.nodeName }, 'peer removed');
      }
    }
  }
}
