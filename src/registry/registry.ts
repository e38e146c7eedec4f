// etcd I/O for weft's keys, and nothing else: config, subnet leases, watch.
// Allocation policy lives in lease_manager.ts; this file only does the
// transactions it is asked to, validating every value it reads.

import { Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import { WeftError, errorMessage, isWeftError } from '../errors.js';
import { type Cidr, formatCidr } from '../net/ipv4.js';
import { configKey, parseSubnetKey, subnetKey, subnetsPrefix } from './keys.js';
import {
  type NetworkConfig,
  type SubnetLease,
  decodeNetworkConfig,
  decodeSubnetLease,
  encodeNetworkConfig,
  encodeSubnetLease,
} from './schema.js';

/** Keys per page of a lease listing: with values capped at 1 KiB, well under gRPC's 4 MiB per response. */
const LIST_PAGE = 1000;

/**
 * gRPC keepalive while a call is open (the lease watch always is): a member
 * cut off without a reset (a dead host, a partition) leaves the watch stream
 * silent, so changes stop arriving until the next re-list; a ping
 * unanswered for KEEPALIVE_TIMEOUT_MS breaks the connection, and the watch
 * moves to another endpoint. etcd refuses pings more often than every 5 s
 * (its --grpc-keepalive-min-time).
 */
const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5000;

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

/** A subnet lease as stored: the value plus the etcd facts needed to renew or replace it. */
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
  readonly records: LeaseRecord[];
  readonly invalid: InvalidEntry[];
  /** etcd revision of the listing; watch from revision + 1. */
  readonly revision: string;
}

export type LeaseEvent =
  | { readonly type: 'put'; readonly record: LeaseRecord; readonly revision: string }
  | { readonly type: 'delete'; readonly subnet: Cidr; readonly key: string; readonly revision: string }
  | { readonly type: 'invalid'; readonly entry: InvalidEntry; readonly revision: string };

export interface LeaseWatchHandlers {
  onEvent(ev: LeaseEvent): void;
  /** The watch ended (compaction, cancel by the server): re-list and watch again. */
  onBroken(err: Error): void;
}

export interface LeaseWatch {
  cancel(): Promise<void>;
}

export interface EtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** Per-call deadline; a down etcd fails calls after this rather than hanging. */
  readonly callTimeoutMs?: number;
  /** TLS: CA (absent: the system CAs), client certificate and key. */
  readonly credentials?: { readonly rootCertificate?: Buffer; readonly privateKey?: Buffer; readonly certChain?: Buffer };
  readonly auth?: { readonly username: string; readonly password: string };
}

/**
 * Why etcd refused us, in words an operator can act on, or undefined when
 * `message` (an etcd3/gRPC error's) is no refusal but an outage worth retrying.
 */
export function refusalReason(message: string, opts: Pick<EtcdOptions, 'credentials' | 'auth' | 'prefix'>): string | undefined {
  // gRPC wraps handshake failures: "14 UNAVAILABLE: No connection established. Last error: Error: <reason>. Resolution note: ..."
  const last = /Last error: (?:Error: )?([\s\S]*?)(?:\. Resolution note:|$)/.exec(message)?.[1] ?? message;
  const raw = (/SSL routines:[^:]*:([^:]+)/.exec(last)?.[1] ?? last).trim();
  const tls = (why: string): string => `TLS handshake failed: ${why} (${raw})`;
  if (/unable to verify the first certificate|unable to get (local )?issuer certificate|self[- ]signed certificate|certificate signature failure/i.test(last)) {
    return tls(`certificate signed by unknown authority: no CA in ${opts.credentials?.rootCertificate ? '--etcd-cafile' : 'the system store (give --etcd-cafile)'} signed the server's certificate`);
  }
  if (/Hostname\/IP does not match|altnames/i.test(last)) return tls("the server's certificate does not name this endpoint's host");
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied)/i.test(last)) {
    return tls(
      opts.credentials?.certChain
        ? 'etcd rejected the client certificate (--etcd-certfile): is it signed by a CA in etcd\'s --trusted-ca-file, and still valid?'
        : 'etcd requires a client certificate: give --etcd-certfile and --etcd-keyfile',
    );
  }
  if (/certificate has expired|certificate is not yet valid/i.test(last)) return tls("the server's certificate is expired or not yet valid");
  if (/wrong version number|packet length too long|http request/i.test(last)) return tls('the endpoint does not speak TLS (use http://?)');
  const user = opts.auth ? `user "${opts.auth.username}"` : 'no user';
  if (/authentication failed, invalid user ID or password/.test(message)) return `authentication failed: invalid user name or password (${user})`;
  if (/etcdserver: user name is empty/.test(message)) return 'authentication failed: etcd has auth enabled; give --etcd-username and a password (WEFT_ETCD_PASSWORD)';
  if (/etcdserver: authentication is not enabled/.test(message)) return 'authentication failed: etcd has auth disabled; drop --etcd-username';
  if (/etcdserver: permission denied/.test(message)) return `permission denied: ${user} needs readwrite on the key prefix ${opts.prefix}/`;
  return undefined;
}

/**
 * grpc-js hands an endpoint's host to TLS as the server name even when it is
 * an IP address, so Node prints deprecation DEP0123 on stderr; the server's
 * certificate is still checked against the IP (subjectAltName IP:...). That
 * one warning is dropped; every other goes through.
 */
let ipServernameWarningMuted = false;
function muteIpServernameWarning(): void {
  if (ipServernameWarningMuted) return;
  ipServernameWarningMuted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [, type, code] = args;
    if (code === 'DEP0123' || (typeof type === 'object' && type !== null && (type as { code?: unknown }).code === 'DEP0123')) return;
    emit(...args);
  }) as typeof process.emitWarning;
}

/** `p`, or a rejection after `ms` if it has not settled by then. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class EtcdRegistry {
  readonly prefix: string;
  readonly endpoints: readonly string[];
  private readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  /** When etcd last answered a call (ms since epoch), and whether the latest call failed to reach it. */
  lastContactMs: number | undefined;
  reachable = false;
  private readonly security: Pick<EtcdOptions, 'credentials' | 'auth' | 'prefix'>;
  /** The last failure's message that was not etcd3's "circuit breaker is open" (which hides the cause). */
  private lastCause = '';

  constructor(opts: EtcdOptions) {
    this.prefix = opts.prefix;
    this.endpoints = opts.endpoints;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    const timeout = this.callTimeoutMs;
    this.security = { prefix: opts.prefix, credentials: opts.credentials, auth: opts.auth };
    if (opts.endpoints.some((e) => e.startsWith('https:'))) muteIpServernameWarning();
    this.client = new Etcd3({
      hosts: [...opts.endpoints],
      dialTimeout: timeout,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: { 'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS, 'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS },
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
      this.lastContactMs = Date.now();
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

  /** One cheap round trip (a keys-only read of the config key), to tell whether etcd answers. */
  async ping(): Promise<void> {
    const key = configKey(this.prefix);
    await this.call(`ping (count ${key})`, () => this.client.getAll().prefix(key).count());
  }

  async getConfig(): Promise<NetworkConfig | undefined> {
    const key = configKey(this.prefix);
    const text = await this.call(`get ${key}`, () => this.client.get(key).string());
    return text === null ? undefined : decodeNetworkConfig(key, text);
  }

  /**
   * Writes the network config. An equal config is left alone; a different one
   * is replaced only with `force` (leases cut from the old network would be stale).
   */
  async putConfig(cfg: NetworkConfig, force: boolean): Promise<'created' | 'unchanged' | 'replaced'> {
    const key = configKey(this.prefix);
    const text = encodeNetworkConfig(cfg);
    const created = await this.call(`create ${key}`, () => this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(text)).commit());
    if (created.succeeded) return 'created';
    const current = await this.call(`get ${key}`, () => this.client.get(key).string());
    if (current === text) return 'unchanged';
    if (!force) {
      throw new WeftError('WEFT_CONFIG_CONFLICT', `${key} already holds a different config (${current}); pass --force to replace it`, { key, current });
    }
    await this.call(`put ${key}`, () => this.client.put(key).value(text).exec());
    return 'replaced';
  }

  private toRecord(kv: IKeyValue): LeaseRecord | InvalidEntry | undefined {
    const key = kv.key.toString();
    const subnet = parseSubnetKey(this.prefix, key);
    if (!subnet) {
      return { key, error: new WeftError('WEFT_VALUE_INVALID', `etcd key ${key}: not a subnet key (want a.b.c.d-len)`, { key }) };
    }
    try {
      return { subnet, key, lease: decodeSubnetLease(key, kv.value.toString()), etcdLease: kv.lease, modRevision: kv.mod_revision };
    } catch (err) {
      if (isWeftError(err)) return { key, error: err };
      throw err;
    }
  }

  /**
   * Every lease, read in pages of LIST_PAGE keys all at the first page's
   * revision (one consistent snapshot), so no single response nears gRPC's
   * 4 MiB limit however many leases there are.
   */
  async listLeases(): Promise<LeaseListing> {
    const prefix = Buffer.from(subnetsPrefix(this.prefix));
    const rangeEnd = prefixEnd(prefix);
    const records: LeaseRecord[] = [];
    const invalid: InvalidEntry[] = [];
    let from = prefix;
    let revision: string | undefined;
    for (let page = 1; ; page++) {
      const res = await this.call(page === 1 ? 'list leases' : `list leases (page ${page})`, () =>
        this.client.kv.range({ key: from, range_end: rangeEnd, limit: LIST_PAGE, ...(revision ? { revision } : {}) }),
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) {
        const r = this.toRecord(kv);
        if (r && 'error' in r) invalid.push(r);
        else if (r) records.push(r);
      }
      const last = res.kvs.at(-1);
      if (!res.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { records, invalid, revision };
  }

  private async grant(ttlS: number): Promise<string> {
    const res = await this.call('grant lease', () => this.client.leaseClient.leaseGrant({ TTL: ttlS }));
    return res.ID;
  }

  /** Revokes an etcd lease (deleting the keys attached to it); errors are ignored: an unrevoked lease expires. */
  async revokeLease(id: string): Promise<void> {
    if (id === '0') return;
    await this.client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }

  /**
   * Creates the subnet's key with a fresh etcd lease, only if the key does
   * not exist. Returns undefined when it does (someone else holds it).
   */
  async createLease(subnet: Cidr, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    const key = subnetKey(this.prefix, subnet);
    const id = await this.grant(ttlS);
    try {
      const res = await this.call(`create ${key}`, () =>
        this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(encodeSubnetLease(value)).lease(id)).commit(),
      );
      if (!res.succeeded) {
        await this.revokeLease(id);
        return undefined;
      }
      return { subnet, key, lease: value, etcdLease: id, modRevision: res.header.revision };
    } catch (err) {
      await this.revokeLease(id);
      throw err;
    }
  }

  /**
   * Rewrites a lease this node holds (new value, fresh etcd lease) only if
   * the key is unchanged since `prev` was read. Returns undefined when it changed.
   */
  async replaceLease(prev: LeaseRecord, value: SubnetLease, ttlS: number): Promise<LeaseRecord | undefined> {
    const id = await this.grant(ttlS);
    try {
      const res = await this.call(`replace ${prev.key}`, () =>
        this.client.if(prev.key, 'Mod', '==', prev.modRevision).then(this.client.put(prev.key).value(encodeSubnetLease(value)).lease(id)).commit(),
      );
      if (!res.succeeded) {
        await this.revokeLease(id);
        return undefined;
      }
      await this.revokeLease(prev.etcdLease);
      return { subnet: prev.subnet, key: prev.key, lease: value, etcdLease: id, modRevision: res.header.revision };
    } catch (err) {
      await this.revokeLease(id);
      throw err;
    }
  }

  /**
   * Renews the record's etcd lease once; returns the TTL etcd granted, in
   * seconds. Throws WEFT_LEASE_LOST when etcd no longer knows the lease.
   */
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
    if (ttl <= 0) throw new WeftError('WEFT_LEASE_LOST', `the etcd lease of ${rec.key} has expired`, { key: rec.key, subnet: formatCidr(rec.subnet) });
    return ttl;
  }

  /** Seconds left on the record's etcd lease; -1 when it has none or it expired. */
  async leaseTtl(rec: LeaseRecord): Promise<number> {
    if (rec.etcdLease === '0') return -1;
    const res = await this.call(`ttl of ${rec.key}`, () => this.client.leaseClient.leaseTimeToLive({ ID: rec.etcdLease }));
    return Number(res.TTL);
  }

  /** Gives the subnet back: revokes the etcd lease, which deletes the key. */
  async releaseLease(rec: LeaseRecord): Promise<void> {
    await this.call(`release ${rec.key}`, async () => {
      await this.client.if(rec.key, 'Mod', '==', rec.modRevision).then(this.client.delete().key(rec.key)).commit();
      await this.revokeLease(rec.etcdLease);
    });
  }

  /** Watches every subnet key from `fromRevision` (inclusive). */
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
    const breakOnce = (err: Error): void => {
      if (broken) return;
      broken = true;
      h.onBroken(err);
    };
    watcher.on('put', (kv) => {
      if (cancelled) return;
      const r = this.toRecord(kv);
      if (!r) return;
      if ('error' in r) h.onEvent({ type: 'invalid', entry: r, revision: kv.mod_revision });
      else h.onEvent({ type: 'put', record: r, revision: kv.mod_revision });
    });
    watcher.on('delete', (kv) => {
      if (cancelled) return;
      const key = kv.key.toString();
      const subnet = parseSubnetKey(this.prefix, key);
      if (subnet) h.onEvent({ type: 'delete', subnet, key, revision: kv.mod_revision });
    });
    watcher.on('error', (err) => breakOnce(err));
    watcher.on('end', () => breakOnce(new Error('watch ended')));
    // Registered after create() saw the first 'connected', so each one here is
    // a reconnect. It resumes from its last revision, but events of a
    // compacted range (or a wiped etcd) are gone: re-list.
    watcher.on('connected', () => breakOnce(new Error('watch reconnected')));
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
