// Stored entries under the subnets prefix, decoded into what a Registry
// returns: a lease record, or an invalid entry naming its key. One decoder
// for every Registry implementation, so they validate alike.

import { WeftError, isWeftError } from '../errors.js';
import { parseSubnetKey } from './keys.js';
import type { InvalidEntry, LeaseEvent, LeaseRecord } from './registry.js';
import { decodeSubnetLease } from './schema.js';

/** A key-value pair as the store holds it. */
export interface StoredEntry {
  readonly key: string;
  readonly value: string;
  /** Store lease ID, "0" for none. */
  readonly lease: string;
  readonly modRevision: string;
}

export function leaseEntry(prefix: string, kv: StoredEntry): LeaseRecord | InvalidEntry {
  const subnet = parseSubnetKey(prefix, kv.key);
  if (!subnet) {
    return { key: kv.key, error: new WeftError('WEFT_VALUE_INVALID', `etcd key ${kv.key}: not a subnet key (want a.b.c.d-len)`, { key: kv.key }) };
  }
  try {
    return { subnet, key: kv.key, lease: decodeSubnetLease(kv.key, kv.value), etcdLease: kv.lease, modRevision: kv.modRevision };
  } catch (err) {
    if (isWeftError(err)) return { key: kv.key, error: err };
    throw err;
  }
}

/** Splits stored entries into records and invalid entries, keeping their order. */
export function leaseEntries(prefix: string, kvs: Iterable<StoredEntry>): { records: LeaseRecord[]; invalid: InvalidEntry[] } {
  const records: LeaseRecord[] = [];
  const invalid: InvalidEntry[] = [];
  for (const kv of kvs) {
    const e = leaseEntry(prefix, kv);
    if ('error' in e) invalid.push(e);
    else records.push(e);
  }
  return { records, invalid };
}

/** The watch event of a put; a value that fails validation is an 'invalid' event. */
export function putEvent(prefix: string, kv: StoredEntry): LeaseEvent {
  const e = leaseEntry(prefix, kv);
  return 'error' in e ? { type: 'invalid', entry: e, revision: kv.modRevision } : { type: 'put', record: e, revision: kv.modRevision };
}

/** The watch event of a delete, or undefined for a key that names no subnet. */
export function deleteEvent(prefix: string, key: string, revision: string): LeaseEvent | undefined {
  const subnet = parseSubnetKey(prefix, key);
  return subnet ? { type: 'delete', subnet, key, revision } : undefined;
}

/** The watch's end, as every Registry reports it. */
export function watchBroken(reason: string, cause?: unknown): WeftError {
  return new WeftError('WEFT_WATCH_BROKEN', `lease watch broken: ${reason}`, { reason }, cause === undefined ? undefined : { cause });
}
