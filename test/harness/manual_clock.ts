// A clock for tests that moves only when told: advance() lets simulated time
// pass and fires what falls due, in order; jump() steps the wall clock alone.

import type { Clock, Timer } from '../../src/clock.js';

interface Pending {
  readonly id: number;
  due: number;
  readonly every: number | undefined;
  readonly fn: () => void;
}

/** Let every promise chain that waits on nothing but other promises run to its end. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Timers due in more steps than this in one advance() are a runaway loop in the code under test. */
const MAX_FIRES_PER_ADVANCE = 1_000_000;

export class ManualClock implements Clock {
  private wall: number;
  /** Simulated monotonic time: what timers are due on (a wall-clock jump does not move it). */
  private mono = 0;
  private nextId = 1;
  private readonly timers = new Map<number, Pending>();
  private readonly handles = new WeakMap<Timer, number>();

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.wall = startMs;
  }

  now(): number {
    return this.wall;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(t: Timer | undefined): void {
    const id = t === undefined ? undefined : this.handles.get(t);
    if (id !== undefined) this.timers.delete(id);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Lets `ms` of time pass: each timer due by then fires in due order (ties
   * in the order they were set), with now() at its due time, and the
   * promises it started settle before the next one fires. Timers set while
   * advancing fire too if they fall due within `ms`.
   */
  async advance(ms: number): Promise<void> {
    const end = this.mono + ms;
    await settle();
    for (let fires = 0; ; fires++) {
      if (fires > MAX_FIRES_PER_ADVANCE) throw new Error(`ManualClock.advance(${ms}): more than ${MAX_FIRES_PER_ADVANCE} timers fired`);
      const next = this.nextDue();
      if (!next || next.due > end) break;
      this.moveTo(next.due);
      if (next.every === undefined) this.timers.delete(next.id);
      else next.due += next.every;
      next.fn();
      await settle();
    }
    this.moveTo(end);
    await settle();
  }

  /**
   * Steps the wall clock by `ms` (an NTP correction, or a suspended machine
   * as Node sees it on waking): now() moves, while every timer keeps the
   * delay it had left, as Node's monotonic timers do.
   */
  jump(ms: number): void {
    this.wall += ms;
  }

  private add(fn: () => void, ms: number, every: number | undefined): Timer {
    const id = this.nextId++;
    this.timers.set(id, { id, due: this.mono + Math.max(0, ms), every, fn });
    const handle: Timer = { unref: () => undefined };
    this.handles.set(handle, id);
    return handle;
  }

  private nextDue(): Pending | undefined {
    let best: Pending | undefined;
    for (const t of this.timers.values()) if (!best || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    return best;
  }

  private moveTo(mono: number): void {
    this.wall += mono - this.mono;
    this.mono = mono;
  }
}
