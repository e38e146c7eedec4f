// Keeps this node's lease alive: renews it at a third of its TTL, retries
// while etcd is down, and re-acquires the same subnet when the lease is lost.
//
// One timer drives one step at a time, and a rewrite (a field of the value
// changed) queues behind the step in flight and holds the timer off while it
// runs, so no two of them ever overlap:
//            renew --ok--> renew ...
//              \--lost (expired, or our key deleted)--> reacquire --ok--> renew
//                                                           \--another node holds it--> onLost

import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import { type WeftError, errorMessage, isWeftError } from '../errors.js';
import { formatCidr } from '../net/ipv4.js';
import type { LeaseManager } from './lease_manager.js';
import type { LeaseRecord } from './registry.js';

/** Retry period while etcd is unreachable, capped by the renew interval. */
const RETRY_MS = 5000;

export interface LeaseKeeperEvents {
  /**
   * The subnet cannot be taken back (another node, or another weftd under
   * our node name, holds it; or its key holds an invalid value): a
   * WEFT_LEASE_CONFLICT whose details name the holder. Nothing more is tried.
   */
  onLost(err: WeftError): void;
  /** The lease was renewed or re-acquired: it now lasts at least until `expiresAtMs`. */
  onRenewed?(expiresAtMs: number): void;
}

export interface LeaseKeeperOptions {
  readonly manager: LeaseManager;
  /** The lease as acquired. */
  readonly initial: LeaseRecord;
  /** When it expires at the earliest (the time its acquisition was asked for, plus the TTL); now + TTL if not given. */
  readonly expiresAtMs?: number;
  readonly ttlS: number;
  readonly log: Logger;
  readonly events: LeaseKeeperEvents;
  /** What the renewal timer runs on and the local deadline is read on. */
  readonly clock: Clock;
}

export class LeaseKeeper {
  private rec: LeaseRecord;
  private timer: Timer | undefined;
  private stopped = false;
  /** A step or a rewrite is running (a loss it meets is acted on when it ends). */
  private stepping = false;
  /** Where the next step or rewrite waits for the one before it. */
  private queue: Promise<unknown> = Promise.resolve();
  private lost = false;
  renewals = 0;
  reacquisitions = 0;
  /**
   * Local deadline (ms since epoch): etcd3 reports a lost lease late, so we
   * keep our own. Counted from when each renewal was asked for, so it never
   * falls after etcd's own expiry: until it passes, no other node can hold
   * the subnet.
   */
  private expiresAtMs: number;

  private readonly manager: LeaseManager;
  private readonly ttlS: number;
  private readonly log: Logger;
  private readonly events: LeaseKeeperEvents;
  private readonly clock: Clock;

  constructor(opts: LeaseKeeperOptions) {
    this.manager = opts.manager;
    this.ttlS = opts.ttlS;
    this.log = opts.log;
    this.events = opts.events;
    this.clock = opts.clock;
    this.rec = opts.initial;
    this.expiresAtMs = opts.expiresAtMs ?? this.clock.now() + this.ttlS * 1000;
  }

  get record(): LeaseRecord {
    return this.rec;
  }

  /** Seconds until the lease expires unless renewed, as far as this node knows. */
  secondsLeft(): number {
    return Math.max(0, Math.round((this.expiresAtMs - this.clock.now()) / 1000));
  }

  /** Starts renewing; a loss reported before start (lostNow) is acted on at once. */
  start(): void {
    this.schedule(this.lost ? 0 : this.intervalMs());
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
  }

  /**
   * Rewrites our lease with the manager's value (set with setValue): same
   * subnet, fresh etcd lease. Runs after the renewal or re-acquisition in
   * progress, and no renewal starts while it runs (the next is due an
   * interval after it). Throws when etcd does not take it (the caller
   * retries); a key changed under us is a loss, handled as lostNow()
   * handles it.
   */
  rewrite(): Promise<void> {
    return this.serial(async () => {
      if (this.stopped) return;
      const renewing = this.timer !== undefined;
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
      this.stepping = true;
      try {
        const asked = this.clock.now();
        const rec = await this.manager.rewrite(this.rec);
        if (!rec) {
          this.lostNow('our subnet key changed while rewriting it');
          return;
        }
        this.rec = rec;
        this.expiresAtMs = asked + this.ttlS * 1000;
        this.events.onRenewed?.(this.expiresAtMs);
        this.log.info({ event: 'lease_rewritten', subnet: formatCidr(rec.subnet) }, 'lease rewritten');
      } finally {
        this.stepping = false;
        if (this.lost) this.schedule(0);
        else if (renewing) this.schedule(this.intervalMs());
      }
    });
  }

  /** Our key vanished from etcd (deleted or expired): re-acquire now rather than at the next renewal. */
  lostNow(reason: string): void {
    if (this.stopped) return;
    if (!this.lost) this.log.warn({ event: 'lease_lost', subnet: formatCidr(this.rec.subnet), reason }, 'lease lost');
    this.lost = true;
    if (!this.stepping) this.schedule(0);
  }

  private intervalMs(): number {
    return this.manager.renewIntervalS() * 1000;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.serial(() => this.step());
    }, ms);
    this.timer.unref();
  }

  /** Runs `fn` once every step and rewrite queued before it has ended. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async step(): Promise<void> {
    if (this.stopped) return;
    this.stepping = true;
    const wasLost = this.lost;
    let next: number;
    try {
      next = wasLost ? await this.reacquire() : await this.renew();
    } finally {
      this.stepping = false;
    }
    // Lost while renewing (the watch saw our key go): re-acquire right away.
    if (next >= 0) this.schedule(!wasLost && this.lost ? 0 : next);
  }

  /** Returns the delay before the next step. */
  private async renew(): Promise<number> {
    const asked = this.clock.now();
    try {
      const ttl = await this.manager.renew(this.rec);
      this.expiresAtMs = asked + ttl * 1000;
      this.renewals++;
      this.events.onRenewed?.(this.expiresAtMs);
      this.log.debug({ event: 'lease_renewed', subnet: formatCidr(this.rec.subnet), ttl_s: ttl }, 'lease renewed');
      return this.intervalMs();
    } catch (err) {
      if (isWeftError(err, 'WEFT_LEASE_LOST') || this.clock.now() >= this.expiresAtMs) {
        this.lostNow(errorMessage(err));
        return 0;
      }
      this.log.warn({ event: 'lease_renew_failed', subnet: formatCidr(this.rec.subnet), err: errorMessage(err) }, 'lease renewal failed; retrying');
      return Math.min(RETRY_MS, this.intervalMs());
    }
  }

  /** Returns the delay before the next step, or -1 after a fatal error. */
  private async reacquire(): Promise<number> {
    const old = this.rec;
    const asked = this.clock.now();
    try {
      // This subnet or none: the dataplane forwards for it (another holder is WEFT_LEASE_CONFLICT).
      const rec = await this.manager.reclaim(old.subnet);
      this.rec = rec;
      if (this.stopped) return -1;
      this.lost = false;
      this.reacquisitions++;
      this.expiresAtMs = asked + this.ttlS * 1000;
      this.events.onRenewed?.(this.expiresAtMs);
      if (old.etcdLease !== rec.etcdLease) await this.manager.forget(old);
      this.log.info({ event: 'lease_reacquired', subnet: formatCidr(rec.subnet) }, 'lease re-acquired');
      return this.intervalMs();
    } catch (err) {
      if (isWeftError(err, 'WEFT_LEASE_CONFLICT')) {
        this.events.onLost(err);
        return -1;
      }
      this.log.warn({ event: 'lease_reacquire_failed', subnet: formatCidr(old.subnet), err: errorMessage(err) }, 'cannot re-acquire the lease yet; retrying');
      return RETRY_MS;
    }
  }
}
