// Lease policy: which subnet this node holds, keeping it across restarts, and
// renewing it with margin. etcd I/O is the registry's; this file decides.

import type { Logger } from 'pino';
import { type Clock, sleep } from '../clock.js';
import { WeftError, errorMessage } from '../errors.js';
import { lastSubnetPath, readLastSubnet, writeLastSubnet } from '../host/last_subnet.js';
import { type Cidr, cidrEquals, contains, formatCidr } from '../net/ipv4.js';
import { chooseSubnet } from './allocation.js';
import { parseSubnetKey, subnetKey } from './keys.js';
import type { LeaseRecord, Registry } from './registry.js';
import type { NetworkConfig, SubnetLease } from './schema.js';

/** Create/replace attempts before giving up on a contended network. */
const MAX_ATTEMPTS = 50;

export interface LeaseManagerOptions {
  readonly registry: Registry;
  readonly config: NetworkConfig;
  /** The value this node writes; nodeName identifies "its" lease. */
  readonly value: SubnetLease;
  readonly ttlS: number;
  /** Directory for the record of the last subnet held; undefined keeps none. */
  readonly stateDir: string | undefined;
  readonly log: Logger;
  readonly random?: () => number;
  /** What the backoff between contended attempts waits on. */
  readonly clock: Clock;
}

export class LeaseManager {
  private readonly o: LeaseManagerOptions;
  private value: SubnetLease;

  constructor(opts: LeaseManagerOptions) {
    this.o = opts;
    this.value = opts.value;
  }

  /** The value written from now on (by acquire, reclaim and rewrite): a field of this node's changed, its WireGuard key say. */
  setValue(value: SubnetLease): void {
    this.value = value;
  }

  /** Rewrites `rec`'s key with the current value (same subnet, fresh etcd lease, the old one revoked); undefined when the key changed since `rec`. */
  rewrite(rec: LeaseRecord): Promise<LeaseRecord | undefined> {
    return this.o.registry.replaceLease(rec, this.value, this.o.ttlS);
  }

  /**
   * Leases a subnet: the one this node name already holds (rewritten with a
   * fresh etcd lease), else the one recorded locally if free, else a random
   * free one (re-acquiring a lost subnet is reclaim's job).
   * Each write is a transaction that fails if the key changed, and is retried.
   */
  async acquire(): Promise<LeaseRecord> {
    const { registry, config, ttlS } = this.o;
    const value = this.value;
    const preferred = await this.readLastSubnet();
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const listing = await registry.listLeases();
      const mine = listing.records
        .filter((r) => r.lease.nodeName === value.nodeName && r.subnet.len === config.subnetLen && contains(config.network, r.subnet.base))
        .sort((a, b) => Number(preferred !== undefined && cidrEquals(b.subnet, preferred)) - Number(preferred !== undefined && cidrEquals(a.subnet, preferred)));
      const held = mine[0];
      if (held) {
        const rec = await registry.replaceLease(held, value, ttlS);
        if (rec) return this.remember(rec, 'kept');
        continue;
      }
      const taken = listing.records.map((r) => r.subnet);
      for (const bad of listing.invalid) {
        const s = parseSubnetKey(registry.prefix, bad.key);
        if (s) taken.push(s);
      }
      const subnet = chooseSubnet(config.network, config.subnetLen, taken, preferred, this.o.random ?? Math.random);
      if (!subnet) {
        throw new WeftError('WEFT_NETWORK_FULL', `no free /${config.subnetLen} left in ${formatCidr(config.network)} (${listing.records.length} leased); remove stale leases or widen the network`, {
          network: formatCidr(config.network),
          subnetLen: config.subnetLen,
          leased: listing.records.length,
          // The listing's revision: a release after it frees a subnet (free_subnet.ts watches from here).
          revision: listing.revision,
        });
      }
      const rec = await registry.createLease(subnet, value, ttlS);
      if (rec) return this.remember(rec, preferred && cidrEquals(subnet, preferred) ? 'reclaimed' : 'new');
      await this.backOff(attempt);
    }
    throw new WeftError('WEFT_LEASE_CONFLICT', `could not lease a subnet of ${formatCidr(config.network)} after ${MAX_ATTEMPTS} attempts: too much contention`, {
      network: formatCidr(config.network),
    });
  }

  /**
   * Takes back exactly `subnet` after this node lost its lease on it (the key
   * was deleted, or its etcd lease expired or vanished with etcd's data):
   * rewrites the key if it still names this weftd, creates it if free.
   * Another holder is WEFT_LEASE_CONFLICT naming it, and no other subnet is
   * leased instead: a running dataplane forwards for this one only.
   */
  async reclaim(subnet: Cidr): Promise<LeaseRecord> {
    const { registry, ttlS } = this.o;
    const value = this.value;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const listing = await registry.listLeases();
      const held = listing.records.find((r) => cidrEquals(r.subnet, subnet));
      if (held && (held.lease.nodeName !== value.nodeName || held.lease.instance !== value.instance)) {
        const who = held.lease.nodeName === value.nodeName ? `another weftd under node name ${held.lease.nodeName}` : `node ${held.lease.nodeName}`;
        throw new WeftError('WEFT_LEASE_CONFLICT', `lost the lease on ${formatCidr(subnet)} and another node holds it now: ${who} (${held.lease.publicIp})`, {
          subnet: formatCidr(subnet),
          node: held.lease.nodeName,
          publicIp: held.lease.publicIp,
        });
      }
      const bad = listing.invalid.find((e) => e.key === subnetKey(registry.prefix, subnet));
      if (bad) {
        throw new WeftError('WEFT_LEASE_CONFLICT', `lost the lease on ${formatCidr(subnet)} and its key now holds an invalid value: ${bad.error.message}`, { subnet: formatCidr(subnet), key: bad.key });
      }
      const rec = held ? await registry.replaceLease(held, value, ttlS) : await registry.createLease(subnet, value, ttlS);
      if (rec) return this.remember(rec, held ? 'kept' : 'reclaimed');
      await this.backOff(attempt);
    }
    throw new WeftError('WEFT_LEASE_CONFLICT', `could not take back ${formatCidr(subnet)} after ${MAX_ATTEMPTS} attempts: too much contention`, { subnet: formatCidr(subnet) });
  }

  /** After a lost race: a random wait, longer with each attempt, so racers spread out. */
  private backOff(attempt: number): Promise<void> {
    return sleep(this.o.clock, Math.floor((this.o.random ?? Math.random)() * 20 * attempt));
  }

  private async remember(rec: LeaseRecord, how: 'kept' | 'reclaimed' | 'new'): Promise<LeaseRecord> {
    this.o.log.info({ event: 'lease_acquired', subnet: formatCidr(rec.subnet), key: rec.key, how, ttl_s: this.o.ttlS }, 'lease acquired');
    await this.writeLastSubnet(rec.subnet);
    return rec;
  }

  /** The subnet recorded at the last acquisition, if a record is kept and reads. */
  private async readLastSubnet(): Promise<Cidr | undefined> {
    const dir = this.o.stateDir;
    if (dir === undefined) return undefined;
    try {
      return await readLastSubnet(dir);
    } catch (err) {
      this.o.log.warn({ event: 'state_invalid', path: lastSubnetPath(dir), err: errorMessage(err) }, 'ignoring unreadable record of the last subnet');
      return undefined;
    }
  }

  /** Records the subnet held, so a restart asks for it again; a failure costs only that. */
  private async writeLastSubnet(subnet: Cidr): Promise<void> {
    const dir = this.o.stateDir;
    if (dir === undefined) return;
    try {
      await writeLastSubnet(dir, subnet);
    } catch (err) {
      const path = lastSubnetPath(dir);
      this.o.log.warn({ event: 'state_write_failed', path, err: errorMessage(err) }, `cannot record the subnet held in ${path} (write): ${errorMessage(err)}; a restart may get another subnet`);
    }
  }

  /** Renews once; the TTL granted, or throws (WEFT_LEASE_LOST, WEFT_ETCD_UNAVAILABLE). */
  renew(rec: LeaseRecord): Promise<number> {
    return this.o.registry.renewLease(rec);
  }

  /** Seconds between renewals: a third of the TTL, so two may fail before expiry. */
  renewIntervalS(): number {
    return Math.max(1, Math.floor(this.o.ttlS / 3));
  }

  /** Gives a subnet back (its key is deleted if unchanged). */
  release(rec: LeaseRecord): Promise<void> {
    return this.o.registry.releaseLease(rec);
  }

  /** Revokes the etcd lease of a record this node no longer uses, quietly: it would expire anyway. */
  forget(rec: LeaseRecord): Promise<void> {
    return this.o.registry.revokeLease(rec.etcdLease);
  }
}
