// Waiting out a full network: a node that found no free subnet wakes as soon
// as a lease goes, instead of polling etcd or exiting for its service manager
// to retry.

import type { Clock } from '../clock.js';
import type { LeaseWatch, Registry } from './registry.js';

/**
 * Resolves at the first subnet key deleted (released, expired) after
 * `listedRevision`, the revision of the listing that found the network full,
 * so a release between that listing and this watch is not missed; also when
 * the watch breaks, and at the latest after `maxMs` (a watch that cannot be
 * made waits that long), so the caller lists again even if the store
 * delivered nothing.
 * Rejects with `signal.reason` when `signal` aborts. Leaves no watch or timer
 * behind either way.
 */
export function untilLeaseDeleted(registry: Registry, listedRevision: string, clock: Clock, maxMs: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    let done = false;
    let watch: LeaseWatch | undefined;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      void watch?.cancel().catch(() => undefined);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => finish(signal.reason);
    const timer = clock.setTimeout(() => finish(), maxMs);
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
    registry
      .watchLeases((BigInt(listedRevision) + 1n).toString(), {
        onEvent: (ev) => {
          if (ev.type === 'delete') finish();
        },
        onBroken: () => finish(),
      })
      .then(
        (w) => {
          watch = w;
          if (done) void w.cancel().catch(() => undefined);
        },
        () => undefined,
      );
  });
}
