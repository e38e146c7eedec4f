// The receive counter's replay window (RFC 6479, as wireguard-go and the
// kernel keep it): a ring of 128 blocks of 64 bits, accepting each counter
// once and refusing those more than REPLAY_WINDOW behind the highest seen.
// Checked only after a packet authenticated, so forged counters cannot
// move it. Blocks are held as two 32-bit words (JavaScript has no 64-bit
// bit operations on numbers); the native engine's window (native/wg_replay.h) is the same.

import { REPLAY_WINDOW, REPLAY_WINDOW_BLOCKS } from './constants.js';

const BLOCK_BITS = 64;

export class ReplayWindow {
  private readonly ring = new Uint32Array(REPLAY_WINDOW_BLOCKS * 2);
  private last = 0;

  /**
   * True (and the counter is recorded) when `counter` was not seen before
   * and is not behind the window; false otherwise. Counters are exact up to
   * 2^53 (a sender reaches that after centuries at line rate); the caller
   * refuses those at or past Reject-After-Messages first.
   */
  accept(counter: number): boolean {
    if (counter > Number.MAX_SAFE_INTEGER) return false;
    const block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const current = Math.floor(this.last / BLOCK_BITS);
      const diff = Math.min(block - current, REPLAY_WINDOW_BLOCKS);
      for (let i = current + 1; i <= current + diff; i++) {
        const k = (i % REPLAY_WINDOW_BLOCKS) * 2;
        this.ring[k] = 0;
        this.ring[k + 1] = 0;
      }
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW) {
      return false;
    }
    const bit = counter % BLOCK_BITS;
    const word = (block % REPLAY_WINDOW_BLOCKS) * 2 + (bit >>> 5);
    const mask = (1 << (bit & 31)) >>> 0;
    if ((this.ring[word]! & mask) !== 0) return false;
    this.ring[word] = this.ring[word]! | mask;
    return true;
  }
}
