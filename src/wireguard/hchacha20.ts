// HChaCha20 (draft-irtf-cfrg-xchacha): the subkey XChaCha20-Poly1305 derives
// from a key and the first 16 bytes of its 24-byte nonce. WireGuard's cookie
// replies use XChaCha20-Poly1305, which node:crypto lacks; with this subkey
// the rest is its ChaCha20-Poly1305 (primitives.ts).

import { readU32LE, writeU32LE } from './messages.js';

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/** The 32-byte HChaCha20 subkey of `key` (32 bytes) and `nonce16` (16 bytes). */
export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  if (key.length !== 32 || nonce16.length !== 16) throw new RangeError('hchacha20: a 32-byte key and a 16-byte nonce');
  const s = new Uint32Array(16);
  s[0] = 0x61707865;
  s[1] = 0x3320646e;
  s[2] = 0x79622d32;
  s[3] = 0x6b206574;
  for (let i = 0; i < 8; i++) s[4 + i] = readU32LE(key, i * 4);
  for (let i = 0; i < 4; i++) s[12 + i] = readU32LE(nonce16, i * 4);
  const qr = (a: number, b: number, c: number, d: number): void => {
    s[a] = s[a]! + s[b]!;
    s[d] = rotl(s[d]! ^ s[a]!, 16);
    s[c] = s[c]! + s[d]!;
    s[b] = rotl(s[b]! ^ s[c]!, 12);
    s[a] = s[a]! + s[b]!;
    s[d] = rotl(s[d]! ^ s[a]!, 8);
    s[c] = s[c]! + s[d]!;
    s[b] = rotl(s[b]! ^ s[c]!, 7);
  };
  for (let r = 0; r < 10; r++) {
    qr(0, 4, 8, 12);
    qr(1, 5, 9, 13);
    qr(2, 6, 10, 14);
    qr(3, 7, 11, 15);
    qr(0, 5, 10, 15);
    qr(1, 6, 11, 12);
    qr(2, 7, 8, 13);
    qr(3, 4, 9, 14);
  }
  const out = new Uint8Array(32);
  const words = [s[0]!, s[1]!, s[2]!, s[3]!, s[12]!, s[13]!, s[14]!, s[15]!];
  words.forEach((w, i) => writeU32LE(out, i * 4, w));
  return out;
}
