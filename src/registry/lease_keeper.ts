// Keeps this node's lease alive: renews it at a third of its TTL, retries
// while etcd is down, and re-acquires the same subnet when the lease is lost.

import type { Logger } from 'pino';
import { WeftError, errorMessage, isWeftError } from '../errors.js';
import { cidrEquals, formatCidr } from '../net/ipv4.js';
import type { LeaseManager } from './lease_manager.js';
import type { LeaseRecord } from './registry.js';

/** Retry period while etcd is unreachable, capped by the renew interval. */
const RETRY_MS = 5000;

export interface LeaseKeeperEvents {
  /** The lease cannot be kept for this subnet (another node took it): stop forwarding. */
  onFatal(err: WeftError): void;
}

export class LeaseKeeper {
  private rec: LeaseRecord;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy = false;
  /** Local deadline (ms since epoch): etcd3 reports a lost lease late, so we keep our own. */
  private expiresAtMs: number;

  constructor(
    private readonly manager: LeaseManager,
    initial: LeaseRecord,
    ttlS: number,
    private readonly log: Logger,
    private readonly events: LeaseKeeperEvents,
  ) {
    this.rec = initial;
    this.expiresAtMs = Date.now() + ttlS * 1000;
  }

  get record(): LeaseRecord {
    return this.rec;
  }

  /** Seconds until the lease expires unless renewed, as far as this node knows. */
  secondsLeft(): number {
    return Math.max(0, Math.round((this.expiresAtMs - Date.now()) / 1000));
  }

  start(): void {
    this.schedule(this.manager.renewIntervalS() * 1000);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Our key vanished from etcd (deleted or expired): re-acquire now rather than at the next renewal. */
  lostNow(reason: string): void {
    if (this.stopped) return;
    this.log.warn({ event: 'lease_lost', subnet: formatCidr(this.rec.subnet), reason }, 'lease lost');
    clearTimeout(this.timer);
    void this.reacquire();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), ms);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped || this.busy) return;
    this.busy = true;
    try {
      const ttl = await this.manager.renew(this.rec);
      this.expiresAtMs = Date.now() + ttl * 1000;
      this.log.debug({ event: 'lease_renewed', subnet: formatCidr(this.rec.subnet), ttl_s: ttl }, 'lease renewed');
      this.schedule(this.manager.renewIntervalS() * 1000);
    } catch (err) {
      if (isWeftError(err, 'WEFT_LEASE_LOST') || Date.now() >= this.expiresAtMs) {
        this.busy = false;
        this.lostNow(errorMessage(err));
        return;
      }
      this.log.warn({ event: 'lease_renew_failed', subnet: formatCidr(this.rec.subnet), err: errorMessage(err) }, 'lease renewal failed; retrying');
      this.schedule(Math.min(RETRY_MS, this.manager.renewIntervalS() * 1000));
    } finally {
      this.busy = false;
    }
  }

  private async reacquire(): Promise<void> {
    if (this.stopped || this.busy) return;
    this.busy = true;
    const want = this.rec.subnet;
    try {
      const rec = await this.manager.acquire(want);
      if (this.stopped) return;
      if (!cidrEquals(rec.subnet, want)) {
        this.events.onFatal(
          new WeftError('WEFT_LEASE_CONFLICT', `lost the lease on ${formatCidr(want)} and another node holds it now; got ${formatCidr(rec.subnet)} instead, which needs a restart to apply`, {
            subnet: formatCidr(want),
            got: formatCidr(rec.subnet),
          }),
        );
        return;
      }
      this.rec = rec;
      this.expiresAtMs = Date.now() + this.manager.renewIntervalS() * 3000;
      this.log.info({ event: 'lease_reacquired', subnet: formatCidr(rec.subnet) }, 'lease re-acquired');
      this.schedule(this.manager.renewIntervalS() * 1000);
    } catch (err) {
      if (isWeftError(err, 'WEFT_NETWORK_FULL')) {
        this.events.onFatal(err);
        return;
      }
      this.log.warn({ event: 'lease_reacquire_failed', subnet: formatCidr(want), err: errorMessage(err) }, 'cannot re-acquire the lease yet; retrying');
      this.busy = false;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reacquire(), RETRY_MS);
      this.timer.unref();
    } finally {
      this.busy = false;
    }
  }
}
