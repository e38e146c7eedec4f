// Retrying etcd calls while etcd is unreachable, with capped exponential
// backoff, logged once per attempt, abandoned when the daemon stops.

import type { Logger } from 'pino';
import { type Clock, sleep } from '../clock.js';
import { errorMessage, isWeftError } from '../errors.js';

const FIRST_MS = 1000;
const MAX_MS = 30_000;

/**
 * Runs `fn` until it succeeds or fails with anything but
 * WEFT_ETCD_UNAVAILABLE; waits 1 s, 2 s, 4 s ... 30 s between attempts.
 * Rejects with `signal.reason` once `signal` aborts.
 */
export async function retryWhileEtcdDown<T>(what: string, fn: () => Promise<T>, log: Logger, signal: AbortSignal, clock: Clock): Promise<T> {
  let delay = FIRST_MS;
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      if (!isWeftError(err, 'WEFT_ETCD_UNAVAILABLE')) throw err;
      log.warn({ event: 'etcd_unavailable', what, attempt, retry_ms: delay, err: errorMessage(err) }, `etcd unreachable: ${what}; retrying`);
    }
    await sleep(clock, delay, signal);
    delay = Math.min(MAX_MS, delay * 2);
  }
}
