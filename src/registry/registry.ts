// The Registry seam: what lease policy, the watch, weftd and weftctl need
// from the store of weft's keys (etcd in production, an in-memory twin in
// tests), and the records it speaks. Implementations: etcd_registry.ts,
// memory_registry.ts; decoding of stored entries: entries.ts.

import type { WeftError } from '../errors.js';
import type { Cidr } from '../net/ipv4.js';
import type { NetworkConfig, SubnetLease } from './schema.js';

/** A subnet lease as stored: the value plus the store's facts needed to renew or replace it. */
export interface LeaseRecord {
  readonly subnet: Cidr;
  readonly key: string;
  readonly lease: SubnetLease;
  /** etcd lease ID (decimal string); "0" when the key has no TTL. */
  readonly etcdLease: string;
  readonly modRevision: string;
}

/** A key under the subnets prefix whose value failed validation. */
export interface InvalidEntry {
  readonly key: string;
  readonly error: WeftError;
}

export interface LeaseListing {
  /** In key order. */
  readonly records: LeaseRecord[];
  readonly invalid: InvalidEntry[];
  /** The store's revision of the listing (one consistent snapshot); watch from revision + 1. */
  readonly revision: string;
}

export type LeaseEvent =
  | { readonly type: 'put'; readonly record: LeaseRecord; readonly revision: string }
  | { readonly type: 'delete'; readonly subnet: Cidr; readonly key: string; readonly revision: string }
  | { readonly type: 'invalid'; readonly entry: InvalidEntry; readonly revision: string };

export interface LeaseWatchHandlers {
  /** Each change under the subnets prefix, in revision order. */
  onEvent(ev: LeaseEvent): void;
  /**
   * The watch ended and delivers nothing more: its start revision was
   * compacted, the connection was lost and regained (events may be
   * missing), or the server cancelled it. A WEFT_WATCH_BROKEN; called at
   * most once. Re-list, and watch again from the listing's revision + 1.
   */
  onBroken(err: WeftError): void;
}

export interface LeaseWatch {
  /** Stops the watch; no event or onBroken is delivered after it resolves. Bounded in time. */
  cancel(): Promise<void>;
}

/**
 * weft's keys in a store with etcd's semantics: a global revision, per-key
 * mod revisions, transactions that compare, leases with TTLs whose keys
 * vanish with them, and watches from a revision.
 *
 * Every call that reaches the store fails with WEFT_ETCD_UNAVAILABLE when
 * the store does not answer (retry later) and WEFT_ETCD_AUTH when it
 * refuses us (retrying will not help); values that fail validation are
 * WEFT_VALUE_INVALID naming the key (in listings, InvalidEntry instead).
 */
export interface Registry {
  /** The key prefix weft's keys live under (keys.ts lays them out). */
  readonly prefix: string;
  /** When the store last answered a call, ms since the epoch on the registry's clock; undefined before it ever did. */
  readonly lastContactMs: number | undefined;
  /** Whether the latest call reached the store. */
  readonly reachable: boolean;

  /** One cheap round trip, to tell whether the store answers. */
  ping(): Promise<void>;
  getConfig(): Promise<NetworkConfig | undefined>;
  /**
   * Writes the network config. An equal config is left alone; a different one
   * is replaced only with `force` (else WEFT_CONFIG_CONFLICT).
   */
  putConfig(cfg: NetworkConfig, force: boolean): Promise<'created' | 'unchanged' | 'replaced'>;
  /** Every lease under the subnets prefix at one revision. */
  listLeases(): Promise<LeaseListing>;
  /**
   * Creates the subnet's key with a fresh store lease of `ttlS` seconds, only
   * if the key does not exist. Undefined when it does (someone else holds it).
   */
  createLease(subnet: Cidr, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined>;
  /**
   * Rewrites `prev`'s key (new value, fresh store lease, the old one revoked)
   * only if its mod revision is still prev's. Undefined when it changed.
   */
  replaceLease(prev: LeaseRecord, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined>;
  /** Renews the record's store lease once: the TTL granted, in seconds; WEFT_LEASE_LOST when the store no longer knows it. */
  renewLease(rec: LeaseRecord): Promise<number>;
  /** Seconds left on the record's store lease; -1 when it has none or it expired. */
  leaseTtl(rec: LeaseRecord): Promise<number>;
  /** Gives the subnet back: deletes the key if unchanged since `rec`, and revokes its store lease. */
  releaseLease(rec: LeaseRecord): Promise<void>;
  /** Revokes a store lease (deleting the keys attached to it); never fails: an unrevoked lease expires. */
  revokeLease(id: string): Promise<void>;
  /** Watches every subnet key from `fromRevision` (inclusive); resolves once the watch is established. */
  watchLeases(fromRevision: string, h: LeaseWatchHandlers): Promise<LeaseWatch>;
  close(): void;
}
