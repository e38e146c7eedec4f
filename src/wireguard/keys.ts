// Curve25519 keys as WireGuard uses them: 32-byte private keys (clamped),
// public keys, their base64 form (`wg genkey` / `wg pubkey`), and X25519
// through node:crypto, whose key objects take raw keys behind fixed DER
// prefixes (PKCS#8 for private, SPKI for public).

import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { KEY_SIZE } from './constants.js';

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

/** A static or ephemeral key pair; `object` is node's handle of the private key, made once. */
export interface KeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly object: KeyObject;
}

/** Clears the bits X25519 ignores or fixes, as `wg genkey` does. */
export function clamp(k: Uint8Array): Uint8Array {
  const c = Uint8Array.from(k);
  c[0] = c[0]! & 248;
  c[31] = (c[31]! & 127) | 64;
  return c;
}

export function keyPair(privateKey: Uint8Array): KeyPair {
  if (privateKey.length !== KEY_SIZE) throw new RangeError(`a Curve25519 private key is ${KEY_SIZE} bytes, not ${privateKey.length}`);
  const priv = clamp(privateKey);
  const object = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, priv]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(object).export({ format: 'der', type: 'spki' });
  return { privateKey: priv, publicKey: new Uint8Array(spki.subarray(spki.length - KEY_SIZE)), object };
}

/** A fresh key pair from `random` (node's CSPRNG unless a test gives its own). */
export function generateKeyPair(random: (n: number) => Uint8Array = randomBytes): KeyPair {
  return keyPair(random(KEY_SIZE));
}

/** X25519(priv, peerPublic); undefined when the result is all zeros (a low-order point: refused, as wireguard-go does) or the key does not import. */
export function dh(priv: KeyPair, peerPublic: Uint8Array): Uint8Array | undefined {
  let shared: Buffer;
  try {
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI_X25519, peerPublic]), format: 'der', type: 'spki' });
    shared = diffieHellman({ privateKey: priv.object, publicKey });
  } catch {
    return undefined; // OpenSSL refuses an all-zero result itself
  }
  return isZeroKey(shared) ? undefined : new Uint8Array(shared);
}

export function formatKey(k: Uint8Array): string {
  return Buffer.from(k).toString('base64');
}

/**
 * A key from its base64 form as `wg` prints it: 44 characters decoding to
 * 32 bytes, canonical (re-encoding gives the same text). Undefined otherwise.
 */
export function parseKey(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  const b = Buffer.from(text, 'base64');
  if (b.length !== KEY_SIZE || b.toString('base64') !== text) return undefined;
  return new Uint8Array(b);
}

export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export function isZeroKey(k: Uint8Array): boolean {
  return k.every((b) => b === 0);
}
