// The steps every Registry takes over its own store's primitives: the
// network config's create-or-compare, a subnet key written on a fresh store
// lease, a keepalive's verdict. One copy, so the implementations agree.

import { WeftError } from '../errors.js';
import { type Cidr, formatCidr } from '../net/ipv4.js';
import type { LeaseRecord } from './registry.js';
import type { SubnetLease } from './schema.js';

export interface ConfigOps {
  /** Writes the value if the key is absent; whether it did. */
  create(): Promise<boolean>;
  /** The key's current value. */
  read(): Promise<string | undefined>;
  /** Writes the value unconditionally. */
  overwrite(): Promise<void>;
}

/**
 * Creates the config key holding `text`; an equal value is left alone; a
 * different one is replaced only with `force` (leases cut from the old
 * network would be stale), else WEFT_CONFIG_CONFLICT naming it.
 */
export async function writeConfig(key: string, text: string, force: boolean, ops: ConfigOps): Promise<'created' | 'unchanged' | 'replaced'> {
  if (await ops.create()) return 'created';
  const current = await ops.read();
  if (current === text) return 'unchanged';
  if (!force) throw new WeftError('WEFT_CONFIG_CONFLICT', `${key} already holds a different config (${current}); pass --force to replace it`, { key, current });
  await ops.overwrite();
  return 'replaced';
}

export interface FreshLeaseOps {
  /** A new store lease; its ID. */
  grant(): Promise<string>;
  /** The compare-and-write of the key on lease `id`: whether the compare held, and the revision. */
  write(id: string): Promise<{ succeeded: boolean; revision: string }>;
  /** Revokes a store lease, never failing. */
  revoke(id: string): Promise<void>;
}

/**
 * Writes `key` on a fresh store lease. The lease is revoked again when the
 * write does not happen (the compare failed, or the call did), so none is
 * left behind; undefined when the compare failed.
 */
export async function writeOnFreshLease(subnet: Cidr, key: string, value: SubnetLease, ops: FreshLeaseOps): Promise<LeaseRecord | undefined> {
  const id = await ops.grant();
  let res: { succeeded: boolean; revision: string };
  try {
    res = await ops.write(id);
  } catch (err) {
    await ops.revoke(id);
    throw err;
  }
  if (!res.succeeded) {
    await ops.revoke(id);
    return undefined;
  }
  return { subnet, key, lease: value, etcdLease: id, modRevision: res.revision };
}

/** The TTL a keepalive granted, or WEFT_LEASE_LOST when the store answered 0: it no longer knows the lease. */
export function grantedTtl(rec: LeaseRecord, ttl: number): number {
  if (ttl <= 0) throw new WeftError('WEFT_LEASE_LOST', `the etcd lease of ${rec.key} has expired`, { key: rec.key, subnet: formatCidr(rec.subnet) });
  return ttl;
}
