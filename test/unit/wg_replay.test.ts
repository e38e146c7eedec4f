// The replay window: each counter accepted once, none more than
// REPLAY_WINDOW behind the highest seen, none past 2^53; the ring
// of blocks (cleared as the window moves, wrapping around) behaves as the
// plain rule over every counter ever seen.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPLAY_WINDOW } from '../../src/wireguard/constants.js';
import { ReplayWindow } from '../../src/wireguard/replay.js';

describe('replay window', () => {
  it('takes counters in order once each, and out of order within the window', () => {
    const w = new ReplayWindow();
    const steps: [number, boolean][] = [
      [0, true], [0, false], [1, true], [1, false], [3, true], [2, true], [2, false], [3, false],
      [64, true], [63, true], [65, true], [1000, true], [500, true], [500, false],
    ];
    for (const [c, ok] of steps) expect(w.accept(c), `counter ${c}`).toBe(ok);
  });

  it('refuses counters more than the window behind, and takes those exactly at its edge', () => {
    const w = new ReplayWindow();
    const top = 100_000;
    expect(w.accept(top)).toBe(true);
    expect(w.accept(top - REPLAY_WINDOW)).toBe(true);
    expect(w.accept(top - REPLAY_WINDOW - 1)).toBe(false);
    expect(w.accept(top - 1)).toBe(true);
  });

  it('forgets nothing inside the window when the window jumps by more than the ring, and wraps around', () => {
    const w = new ReplayWindow();
    for (let c = 0; c < 200; c++) expect(w.accept(c)).toBe(true);
    expect(w.accept(180)).toBe(false);
    expect(w.accept(8300)).toBe(true); // 180 is 8120 behind: still inside, still seen
    expect(w.accept(180)).toBe(false);
    expect(w.accept(171)).toBe(false); // 8129 behind
    expect(w.accept(50_000_000)).toBe(true);
    expect(w.accept(50_000_000 - 8000)).toBe(true);
    expect(w.accept(50_000_000 - 8000)).toBe(false);
  });

  it('refuses counters past 2^53, which a number cannot tell apart (the limit of 2^64 - 2^13 - 1 is its caller\'s, wg_differential)', () => {
    const w = new ReplayWindow();
    expect(w.accept(Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(w.accept(2 ** 60)).toBe(false);
  });

  it('agrees with the plain rule (unseen, and at most the window behind the highest seen) on random sequences', () => {
    const counter = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 40_000 }), fc.integer({ min: 0, max: 2 ** 40 }));
    fc.assert(
      fc.property(fc.array(counter, { maxLength: 400 }), (counters) => {
        const w = new ReplayWindow();
        const seen = new Set<number>();
        let top = -1;
        for (const c of counters) {
          const want = !seen.has(c) && (top < 0 || top - c <= REPLAY_WINDOW);
          expect(w.accept(c)).toBe(want);
          if (want) {
            seen.add(c);
            top = Math.max(top, c);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
