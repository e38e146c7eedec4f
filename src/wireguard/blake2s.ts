// BLAKE2s (RFC 7693) with a key and any output length from 1 to 32 bytes:
// WireGuard's MAC is keyed BLAKE2s with a 16-byte output, which node:crypto
// cannot compute (its blake2s256 takes neither a key nor another length).
// Unkeyed 32-byte hashing goes through node:crypto instead (primitives.ts).

import { writeU32LE } from './messages.js';

const IV = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);

const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
].map((r) => Uint8Array.from(r));

const BLOCK = 64;

function rotr(x: number, n: number): number {
  return (x >>> n) | (x << (32 - n));
}

/** Compresses one 64-byte block at `off` of `block` into `h`; `t` bytes hashed so far, `last` for the final block. */
function compress(h: Uint32Array, block: Uint8Array, t: number, last: boolean, v: Uint32Array, m: Uint32Array): void {
  // The words loaded inline: readU32LE here costs about 4% of a MAC, and the js engine checks a mac1 per handshake datagram it receives.
  for (let i = 0; i < 16; i++) m[i] = block[i * 4]! | (block[i * 4 + 1]! << 8) | (block[i * 4 + 2]! << 16) | (block[i * 4 + 3]! << 24);
  for (let i = 0; i < 8; i++) {
    v[i] = h[i]!;
    v[i + 8] = IV[i]!;
  }
  v[12] = (v[12]! ^ t) >>> 0;
  v[13] = (v[13]! ^ Math.floor(t / 0x100000000)) >>> 0;
  if (last) v[14] = ~v[14]! >>> 0;
  const g = (a: number, b: number, c: number, d: number, x: number, y: number): void => {
    v[a] = v[a]! + v[b]! + x;
    v[d] = rotr(v[d]! ^ v[a]!, 16);
    v[c] = v[c]! + v[d]!;
    v[b] = rotr(v[b]! ^ v[c]!, 12);
    v[a] = v[a]! + v[b]! + y;
    v[d] = rotr(v[d]! ^ v[a]!, 8);
    v[c] = v[c]! + v[d]!;
    v[b] = rotr(v[b]! ^ v[c]!, 7);
  };
  for (let r = 0; r < 10; r++) {
    const s = SIGMA[r]!;
    g(0, 4, 8, 12, m[s[0]!]!, m[s[1]!]!);
    g(1, 5, 9, 13, m[s[2]!]!, m[s[3]!]!);
    g(2, 6, 10, 14, m[s[4]!]!, m[s[5]!]!);
    g(3, 7, 11, 15, m[s[6]!]!, m[s[7]!]!);
    g(0, 5, 10, 15, m[s[8]!]!, m[s[9]!]!);
    g(1, 6, 11, 12, m[s[10]!]!, m[s[11]!]!);
    g(2, 7, 8, 13, m[s[12]!]!, m[s[13]!]!);
    g(3, 4, 9, 14, m[s[14]!]!, m[s[15]!]!);
  }
  for (let i = 0; i < 8; i++) h[i] = h[i]! ^ v[i]! ^ v[i + 8]!;
}

/**
 * BLAKE2s of the concatenation of `parts`, `outLen` bytes (1-32), keyed with
 * `key` (0-32 bytes; none when empty). The output length and key length are
 * parameters of the hash, so a 16-byte BLAKE2s is not a truncated 32-byte one.
 */
export function blake2s(outLen: number, parts: readonly Uint8Array[], key: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (!(outLen >= 1 && outLen <= 32) || key.length > 32) throw new RangeError(`blake2s: output 1-32 bytes and key at most 32 (got ${outLen}, ${key.length})`);
  const h = Uint32Array.from(IV);
  h[0] = h[0]! ^ (0x01010000 | (key.length << 8) | outLen);
  const v = new Uint32Array(16);
  const m = new Uint32Array(16);
  const buf = new Uint8Array(BLOCK);
  let fill = 0;
  let t = 0;
  const absorb = (data: Uint8Array): void => {
    for (let i = 0; i < data.length; i++) {
      // A full buffer is compressed only once more input follows: the last block is compressed by finish().
      if (fill === BLOCK) {
        t += BLOCK;
        compress(h, buf, t, false, v, m);
        fill = 0;
      }
      buf[fill++] = data[i]!;
    }
  };
  if (key.length > 0) {
    const block = new Uint8Array(BLOCK);
    block.set(key);
    absorb(block);
  }
  for (const p of parts) absorb(p);
  t += fill;
  buf.fill(0, fill);
  compress(h, buf, t, true, v, m);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) writeU32LE(out, i * 4, h[i]!);
  return out.subarray(0, outLen);
}
