// The manual clock the lease tests run on, and sleep() over the clock seam:
// timers fire in due order at their due time, intervals repeat, a wall-clock
// jump moves now() alone, an aborted sleep leaves no timer behind.

import { describe, expect, it } from 'vitest';
import { sleep } from '../../src/clock.js';
import { ManualClock } from '../harness/manual_clock.js';

describe('ManualClock', () => {
  it('fires due timers in due order (ties in the order set) with now() at each due time', async () => {
    const clock = new ManualClock(1_000_000);
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${clock.now() - 1_000_000}`);
    clock.setTimeout(at('c'), 300);
    clock.setTimeout(at('a'), 100);
    clock.setTimeout(at('b'), 100);
    const cancelled = clock.setTimeout(at('x'), 200);
    clock.clearTimeout(cancelled);
    await clock.advance(250);
    expect(fired).toEqual(['a@100', 'b@100']);
    expect(clock.now()).toBe(1_000_250);
    await clock.advance(50);
    expect(fired).toEqual(['a@100', 'b@100', 'c@300']);
    expect(clock.pending).toBe(0);
  });

  it('repeats intervals, and fires timers set while advancing that fall due within it', async () => {
    const clock = new ManualClock(0);
    const ticks: number[] = [];
    const every = clock.setInterval(() => {
      ticks.push(clock.now());
      if (clock.now() === 2000) clock.setTimeout(() => ticks.push(-clock.now()), 0);
    }, 1000);
    await clock.advance(3500);
    expect(ticks).toEqual([1000, 2000, -2000, 3000]);
    clock.clearTimeout(every);
    await clock.advance(5000);
    expect(ticks).toHaveLength(4);
  });

  it('a jump moves the wall clock while timers keep the delay they had left', async () => {
    const clock = new ManualClock(0);
    let firedAt: number | undefined;
    clock.setTimeout(() => (firedAt = clock.now()), 1000);
    clock.jump(3_600_000);
    expect(clock.now()).toBe(3_600_000);
    await clock.advance(999);
    expect(firedAt).toBeUndefined();
    await clock.advance(1);
    expect(firedAt).toBe(3_601_000);
  });

  it('lets the promises a timer started settle before the next timer fires', async () => {
    const clock = new ManualClock(0);
    const order: string[] = [];
    clock.setTimeout(() => {
      void (async () => {
        await null;
        await null;
        order.push('first, settled');
      })();
    }, 10);
    clock.setTimeout(() => order.push('second'), 10);
    await clock.advance(10);
    expect(order).toEqual(['first, settled', 'second']);
  });
});

describe('sleep on the clock seam', () => {
  it('resolves after its delay, and an abort rejects it with the reason and clears its timer', async () => {
    const clock = new ManualClock(0);
    let done = false;
    void sleep(clock, 500).then(() => (done = true));
    await clock.advance(499);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);

    const ac = new AbortController();
    const slept = sleep(clock, 500, ac.signal);
    expect(clock.pending).toBe(1);
    ac.abort(new Error('stopping'));
    await expect(slept).rejects.toThrow('stopping');
    expect(clock.pending).toBe(0);
    await expect(sleep(clock, 1, ac.signal)).rejects.toThrow('stopping');
  });
});
