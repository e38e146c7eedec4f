// Waiting in tests: poll until a condition holds or fail naming what was
// awaited, always bounded in time; and a plain sleep.

import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/**
 * Calls `fn` every `everyMs` until it returns something other than
 * undefined or false, and returns that; throws, naming `what`, after
 * `timeoutMs` (`what` as a function: called then, to name the last state seen).
 */
export async function until<T>(what: string | (() => string), fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(everyMs);
  }
}
