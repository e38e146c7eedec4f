// TAI64N timestamps, the initiation's replay protection: 8 bytes of
// 2^62 + 10 + Unix seconds and 4 of nanoseconds, big-endian. The
// nanoseconds are rounded down to 2^24 ns (about 17 ms), as wireguard-go
// does, so the field does not reveal the clock's precision.

import { TAI64N_SIZE } from './constants.js';

const BASE = 0x400000000000000an;
const WHITENER = 0xffffff;

export function tai64n(ms: number): Uint8Array {
  const out = Buffer.alloc(TAI64N_SIZE);
  const secs = Math.floor(ms / 1000);
  out.writeBigUInt64BE(BASE + BigInt(secs), 0);
  const nanos = Math.floor((ms - secs * 1000) * 1e6);
  out.writeUInt32BE((nanos & ~WHITENER) >>> 0, 8);
  return new Uint8Array(out);
}

/** True when timestamp `a` is later than `b`. */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) > 0;
}
