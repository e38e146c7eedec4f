// The clock seam: wall time and timers, behind one interface, so lease
// policy and the daemon's periodic work can run on simulated time in tests.

/** A pending timer: `unref()` lets the process exit while it is pending (a no-op on simulated clocks). */
export interface Timer {
  unref(): void;
}

export interface Clock {
  /** Wall time in ms since the epoch, as Date.now(). */
  now(): number;
  /** Calls `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Calls `fn` every `ms` until cleared. */
  setInterval(fn: () => void, ms: number): Timer;
  /** Cancels a timer of either kind; undefined or an already fired timer is fine. */
  clearTimeout(t: Timer | undefined): void;
}

/** Node's own clock and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
};

/**
 * Resolves after `ms` on `clock`; rejects with `signal.reason` if `signal`
 * aborts first (or already has), and then leaves no timer behind.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
