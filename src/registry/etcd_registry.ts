// The Registry on etcd (the etcd3 client over gRPC): weft's keys, read and
// written as the transactions lease policy asks for, every value validated;
// each failure typed as an outage or a refusal, naming the endpoints.

import { type ComparatorBuilder, Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import { type Clock, systemClock } from '../clock.js';
import { WeftError, errorMessage, isWeftError } from '../errors.js';
import type { Cidr } from '../net/ipv4.js';
import { type StoredEntry, deleteEvent, leaseEntries, putEvent, watchBroken } from './entries.js';
import { refusalReason } from './etcd_refusal.js';
import { muteIpServernameWarning } from './ip_servername_warning.js';
import { requireLeader } from './require_leader.js';
import { configKey, subnetKey, subnetsPrefix } from './keys.js';
import { grantedTtl, writeConfig, writeOnFreshLease } from './steps.js';
import type { LeaseListing, LeaseRecord, LeaseWatch, LeaseWatchHandlers, Registry } from './registry.js';
import { type NetworkConfig, type SubnetLease, decodeNetworkConfig, encodeNetworkConfig, encodeSubnetLease } from './schema.js';

/** Keys per page of a lease listing: with values capped at 1 KiB, well under gRPC's 4 MiB per response. */
const LIST_PAGE = 1000;

/**
 * gRPC keepalive while a call is open (the lease watch always is): a member
 * cut off without a reset (a dead host, a partition) leaves the watch stream
 * silent, so changes stop arriving until the next re-list; a ping
 * unanswered for KEEPALIVE_TIMEOUT_MS breaks the connection, and the watch
 * moves to another endpoint, within 9 s. etcd refuses pings more often than
 * every 5 s (its --grpc-keepalive-min-time); a member that still answers but
 * has lost its leader is left by requireLeader instead.
 */
const KEEPALIVE_TIME_MS = 6000;
const KEEPALIVE_TIMEOUT_MS = 3000;

/** The end of the key range holding every key that starts with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export interface EtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** Per-call deadline; a down etcd fails calls after this rather than hanging. */
  readonly callTimeoutMs?: number;
  /** TLS: CA (absent: the system CAs), client certificate and key. */
  readonly credentials?: { readonly rootCertificate?: Buffer; readonly privateKey?: Buffer; readonly certChain?: Buffer };
  readonly auth?: { readonly username: string; readonly password: string };
  /** Keys per page of a lease listing (default 1000). */
  readonly listPageSize?: number;
  /** What lastContactMs is read on (default: the system clock); call deadlines are gRPC's, on real time. */
  readonly clock?: Clock;
}

/** An etcd member's own account of itself (etcd's maintenance Status). */
export interface MemberStatus {
  readonly memberId: string;
  /** The member id of the leader it follows; '0' when it has none. */
  readonly leader: string;
  readonly raftTerm: string;
  readonly version: string;
  /** Raised alarms and errors, e.g. "etcdserver: mvcc: database space exceeded". */
  readonly alarms: readonly string[];
  readonly learner: boolean;
}

/** etcd3's key-value as the shared decoder takes it. */
function stored(kv: IKeyValue): StoredEntry {
  return { key: kv.key.toString(), value: kv.value.toString(), lease: kv.lease, modRevision: kv.mod_revision };
}

/** `p`, or a rejection after `ms` if it has not settled by then. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class EtcdRegistry implements Registry {
  readonly prefix: string;
  readonly endpoints: readonly string[];
  private readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  private readonly listPageSize: number;
  private readonly clock: Clock;
  lastContactMs: number | undefined;
  reachable = false;
  private readonly security: Pick<EtcdOptions, 'credentials' | 'auth' | 'prefix'>;
  /** The last failure's message that was not etcd3's "circuit breaker is open" (which hides the cause). */
  private lastCause = '';

  constructor(opts: EtcdOptions) {
    this.prefix = opts.prefix;
    this.endpoints = opts.endpoints;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.listPageSize = opts.listPageSize ?? LIST_PAGE;
    this.clock = opts.clock ?? systemClock;
    const timeout = this.callTimeoutMs;
    this.security = { prefix: opts.prefix, credentials: opts.credentials, auth: opts.auth };
    if (opts.endpoints.some((e) => e.startsWith('https:'))) muteIpServernameWarning();
    this.client = new Etcd3({
      hosts: [...opts.endpoints],
      dialTimeout: timeout,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: { 'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS, 'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS, interceptors: [requireLeader] } as IOptions['grpcOptions'],
      // A missing rootCertificate is grpc-js's "the default trust store".
      ...(opts.credentials ? { credentials: opts.credentials as IOptions['credentials'] } : {}),
      ...(opts.auth ? { auth: { ...opts.auth } } : {}),
    });
  }

  /**
   * Runs an etcd call, naming the endpoints in its failures: WEFT_ETCD_AUTH
   * when etcd refuses us (TLS trust, client certificate, user/password,
   * permissions), which retrying will not fix; WEFT_ETCD_UNAVAILABLE otherwise.
   */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.lastContactMs = this.clock.now();
      this.reachable = true;
      this.lastCause = '';
      return result;
    } catch (err) {
      if (isWeftError(err)) throw err;
      this.reachable = false;
      let message = errorMessage(err);
      // After repeated failures etcd3 stops trying for 5 s and says only that; keep the cause.
      if (/circuit breaker is open/.test(message) && this.lastCause !== '') message = `${this.lastCause} (${message})`;
      else this.lastCause = message;
      const where = `etcd ${this.endpoints.join(',')}`;
      const refusal = refusalReason(message, this.security);
      if (refusal !== undefined) throw new WeftError('WEFT_ETCD_AUTH', `${where}: ${what}: ${refusal}`, { endpoints: this.endpoints, what }, { cause: err });
      throw new WeftError('WEFT_ETCD_UNAVAILABLE', `${where}: ${what}: ${message}`, { endpoints: this.endpoints, what }, { cause: err });
    }
  }

  /** A count of the config key: no value crosses the wire. */
  async ping(): Promise<void> {
    const key = configKey(this.prefix);
    await this.call(`ping (count ${key})`, () => this.client.getAll().prefix(key).count());
  }

  /**
   * What the member behind the endpoint (give the registry one endpoint)
   * says of itself: its id, the leader it follows ('0': none, it has lost
   * quorum), its alarms. No key is read.
   */
  async memberStatus(): Promise<MemberStatus> {
    const res = await this.call('member status', () => this.client.maintenance.status());
    return { memberId: res.header.member_id, leader: res.leader, raftTerm: res.raftTerm, version: res.version, alarms: res.errors ?? [], learner: res.isLearner === true };
  }

  async getConfig(): Promise<NetworkConfig | undefined> {
    const key = configKey(this.prefix);
    const text = await this.call(`get ${key}`, () => this.client.get(key).string());
    return text === null ? undefined : decodeNetworkConfig(key, text);
  }

  putConfig(cfg: NetworkConfig, force: boolean): Promise<'created' | 'unchanged' | 'replaced'> {
    const key = configKey(this.prefix);
    const text = encodeNetworkConfig(cfg);
    return writeConfig(key, text, force, {
      create: async () => (await this.call(`create ${key}`, () => this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(text)).commit())).succeeded,
      read: async () => (await this.call(`get ${key}`, () => this.client.get(key).string())) ?? undefined,
      overwrite: async () => void (await this.call(`put ${key}`, () => this.client.put(key).value(text).exec())),
    });
  }

  /**
   * Every lease, read in pages of listPageSize keys all at the first page's
   * revision (one consistent snapshot), so no single response nears gRPC's
   * 4 MiB limit however many leases there are.
   */
  async listLeases(): Promise<LeaseListing> {
    const prefix = Buffer.from(subnetsPrefix(this.prefix));
    const rangeEnd = prefixEnd(prefix);
    const kvs: StoredEntry[] = [];
    let from = prefix;
    let revision: string | undefined;
    for (let page = 1; ; page++) {
      const res = await this.call(page === 1 ? 'list leases' : `list leases (page ${page})`, () =>
        this.client.kv.range({ key: from, range_end: rangeEnd, limit: this.listPageSize, ...(revision ? { revision } : {}) }),
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) kvs.push(stored(kv));
      const last = res.kvs.at(-1);
      if (!res.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { ...leaseEntries(this.prefix, kvs), revision };
  }

  /** The compare-and-write of a subnet key on a fresh etcd lease; `compare` is the etcd3 builder's `if`. */
  private writeOnFreshLease(what: string, subnet: Cidr, key: string, value: SubnetLease, ttlS: number, compare: () => ComparatorBuilder): Promise<LeaseRecord | undefined> {
    return writeOnFreshLease(subnet, key, value, {
      grant: async () => (await this.call('grant lease', () => this.client.leaseClient.leaseGrant({ TTL: ttlS }))).ID,
      write: async (id) => {
        const res = await this.call(what, () => compare().then(this.client.put(key).value(encodeSubnetLease(value)).lease(id)).commit());
        return { succeeded: res.succeeded, revision: res.header.revision };
      },
      revoke: (id) => this.revokeLease(id),
    });
  }

  async revokeLease(id: string): Promise<void> {
    if (id === '0') return;
    await this.client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }

  async createLease(subnet: Cidr, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    const key = subnetKey(this.prefix, subnet);
    return this.writeOnFreshLease(`create ${key}`, subnet, key, value, ttlS, () => this.client.if(key, 'Create', '==', 0));
  }

  async replaceLease(prev: LeaseRecord, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    const rec = await this.writeOnFreshLease(`replace ${prev.key}`, prev.subnet, prev.key, value, ttlS, () => this.client.if(prev.key, 'Mod', '==', prev.modRevision));
    if (rec) await this.revokeLease(prev.etcdLease);
    return rec;
  }

  async renewLease(rec: LeaseRecord): Promise<number> {
    const ttl = await this.call(`renew lease of ${rec.key}`, async () => {
      const stream = await this.client.leaseClient.leaseKeepAlive();
      let answered = false;
      try {
        return await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no keepalive answer in ${this.callTimeoutMs} ms`)), this.callTimeoutMs);
          stream.on('data', (res: { TTL: string }) => {
            clearTimeout(timer);
            answered = true;
            resolve(Number(res.TTL));
          });
          stream.on('error', (err: Error) => {
            clearTimeout(timer);
            reject(err);
          });
          stream.write({ ID: rec.etcdLease });
        });
      } finally {
        // Unanswered, the call would stay open on the connection until etcd
        // answers (an etcd that stopped answering piles them up): cancel it.
        if (answered) stream.end();
        else stream.cancel();
      }
    });
    return grantedTtl(rec, ttl);
  }

  async leaseTtl(rec: LeaseRecord): Promise<number> {
    if (rec.etcdLease === '0') return -1;
    const res = await this.call(`ttl of ${rec.key}`, () => this.client.leaseClient.leaseTimeToLive({ ID: rec.etcdLease }));
    return Number(res.TTL);
  }

  async releaseLease(rec: LeaseRecord): Promise<void> {
    await this.call(`release ${rec.key}`, async () => {
      await this.client.if(rec.key, 'Mod', '==', rec.modRevision).then(this.client.delete().key(rec.key)).commit();
      await this.revokeLease(rec.etcdLease);
    });
  }

  async watchLeases(fromRevision: string, h: LeaseWatchHandlers): Promise<LeaseWatch> {
    // etcd3's create() and cancel() wait for etcd's answer with no deadline:
    // an etcd that is frozen or cut off without a reset would hang them (and
    // with them every re-list, and weftd's shutdown). Both are bounded here.
    const watcher: Watcher = this.client.watch().prefix(subnetsPrefix(this.prefix)).startRevision(fromRevision).watcher();
    const cancelBounded = (): Promise<void> => withDeadline(watcher.cancel(), this.callTimeoutMs, 'cancel watch').catch(() => undefined);
    // An 'error' with no listener would throw; a watch abandoned on a timeout may still emit one.
    watcher.on('error', () => undefined);
    try {
      await this.call('watch leases', () =>
        withDeadline(
          new Promise<void>((resolve, reject) => {
            watcher.once('connected', () => resolve());
            watcher.once('error', reject);
          }),
          this.callTimeoutMs,
          'create watch',
        ),
      );
    } catch (err) {
      void cancelBounded();
      throw err;
    }
    let broken = false;
    /** Set once cancelled: a watch whose cancel went unanswered may still deliver; its events are stale. */
    let cancelled = false;
    const breakOnce = (reason: string, cause?: unknown): void => {
      if (broken) return;
      broken = true;
      h.onBroken(watchBroken(reason, cause));
    };
    watcher.on('put', (kv) => {
      if (!cancelled) h.onEvent(putEvent(this.prefix, stored(kv)));
    });
    watcher.on('delete', (kv) => {
      if (cancelled) return;
      const ev = deleteEvent(this.prefix, kv.key.toString(), kv.mod_revision);
      if (ev) h.onEvent(ev);
    });
    // A start revision already compacted ends here, as "Watcher canceled: " with no reason.
    watcher.on('error', (err) => breakOnce(errorMessage(err), err));
    watcher.on('end', () => breakOnce('watch ended'));
    // Registered after create() saw the first 'connected', so each one here is
    // a reconnect. It resumes from its last revision, but events of a
    // compacted range (or a wiped etcd) are gone: re-list.
    watcher.on('connected', () => breakOnce('watch reconnected'));
    return {
      cancel: async () => {
        broken = true;
        cancelled = true;
        await cancelBounded();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}
