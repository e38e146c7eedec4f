// The Noise functions WireGuard is built from (whitepaper section 5.4):
// HASH (BLAKE2s-256), MAC (keyed BLAKE2s-128), HMAC over BLAKE2s, KDF1-3,
// AEAD (ChaCha20-Poly1305 with a counter nonce) and XAEAD
// (XChaCha20-Poly1305, cookie replies only). node:crypto where it has them.

import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { blake2s } from './blake2s.js';
import { AEAD_TAG_SIZE, MAC_SIZE } from './constants.js';
import { hchacha20 } from './hchacha20.js';
import { writeU32LE } from './messages.js';

export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return blake2s(MAC_SIZE, parts, key);
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** KDF_n(key, input): n 32-byte outputs of HKDF with HMAC-BLAKE2s, salt `key`, no info. */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmac(key, input);
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    prev = hmac(prk, prev, Uint8Array.of(i));
    out.push(prev);
  }
  return out;
}

/** Writes the nonce of a 64-bit counter into `nonce` (12 bytes, the first 4 left zero): the counter little-endian at 4. */
export function setCounterNonce(nonce: Uint8Array, counter: number): void {
  writeU32LE(nonce, 4, counter % 0x100000000);
  writeU32LE(nonce, 8, Math.floor(counter / 0x100000000));
}

/** Counter 0's nonce, the only one a handshake message's AEAD uses (each key seals once); never written. */
const ZERO_NONCE = Buffer.alloc(12);

/**
 * ChaCha20-Poly1305 sealing buf[at, at + len) in place under a 12-byte
 * nonce (the cipher copies it), the 16-byte tag written right after; no
 * `aad` is the empty one (node needs no setAAD for it).
 */
export function aeadSealInPlace(key: Uint8Array, nonce: Uint8Array, buf: Uint8Array, at: number, len: number, aad?: Uint8Array): void {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  if (aad) c.setAAD(aad, { plaintextLength: len });
  buf.set(c.update(buf.subarray(at, at + len)), at);
  c.final();
  buf.set(c.getAuthTag(), at + len);
}

/** ChaCha20-Poly1305 under a 12-byte nonce: ciphertext followed by the 16-byte tag. */
export function aeadSealNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.length + AEAD_TAG_SIZE);
  out.set(plaintext);
  aeadSealInPlace(key, nonce, out, 0, plaintext.length, aad);
  return out;
}

/** The plaintext of ciphertext-and-tag `sealed`, or undefined when it does not authenticate; no `aad` is the empty one. */
export function aeadOpenNonce(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer | undefined {
  if (sealed.length < AEAD_TAG_SIZE) return undefined;
  const body = sealed.subarray(0, sealed.length - AEAD_TAG_SIZE);
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  if (aad) d.setAAD(aad, { plaintextLength: body.length });
  d.setAuthTag(sealed.subarray(sealed.length - AEAD_TAG_SIZE));
  const out = d.update(body);
  try {
    d.final();
  } catch {
    return undefined;
  }
  return out;
}

/** The handshake's AEAD: ChaCha20-Poly1305 under counter 0's nonce. */
export function aeadSeal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  return aeadSealNonce(key, ZERO_NONCE, plaintext, aad);
}

export function aeadOpen(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  return aeadOpenNonce(key, ZERO_NONCE, sealed, aad);
}

/** XChaCha20-Poly1305: ChaCha20-Poly1305 under HChaCha20(key, nonce[0:16]) and nonce 0^4 || nonce[16:24]. */
function xNonce(key: Uint8Array, nonce24: Uint8Array): { subkey: Uint8Array; nonce: Buffer } {
  if (nonce24.length !== 24) throw new RangeError('xaead: a 24-byte nonce');
  const nonce = Buffer.alloc(12);
  nonce.set(nonce24.subarray(16, 24), 4);
  return { subkey: hchacha20(key, nonce24.subarray(0, 16)), nonce };
}

export function xaeadSeal(key: Uint8Array, nonce24: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const { subkey, nonce } = xNonce(key, nonce24);
  return aeadSealNonce(subkey, nonce, plaintext, aad);
}

export function xaeadOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  const { subkey, nonce } = xNonce(key, nonce24);
  return aeadOpenNonce(subkey, nonce, sealed, aad);
}
