// Transport data messages (whitepaper 5.4.6) in TypeScript, the reference
// the native engine's sealing and opening (native/wg_transport.h) are
// tested against byte for byte:
//
//   type 4 | receiver index (LE) | counter (LE u64) | AEAD(key, counter, packet || zero padding, no AD)
//
// The packet is padded with zeros to a multiple of 16, never past the
// padding limit (the TUN's MTU); the receiver finds the packet's end in its
// IPv4 header.

import { AEAD_TAG_SIZE, MSG_TRANSPORT, PADDING_MULTIPLE, TRANSPORT_COUNTER, TRANSPORT_HEADER_SIZE, TRANSPORT_RECEIVER } from './constants.js';
import { readU32LE, writeU32LE } from './messages.js';
import { aeadOpenNonce, aeadSealNonce, counterNonce } from './primitives.js';

/** The padded plaintext length of a `len`-byte packet under `limit` (no padding at or past it). */
export function paddedLength(len: number, limit: number): number {
  if (len >= limit) return len;
  return Math.min((len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1), limit);
}

/** Bytes of the transport message carrying a `len`-byte packet under padding `limit`. */
export function transportLength(len: number, limit: number): number {
  return TRANSPORT_HEADER_SIZE + paddedLength(len, limit) + AEAD_TAG_SIZE;
}

/**
 * Writes the transport message of packet[off, off + len) into `out` at 0
 * (it must hold transportLength(len, limit) bytes) for the peer's
 * `receiverIndex`, sealed under `key` with `counter`; returns its length.
 */
export function sealTransport(out: Uint8Array, key: Uint8Array, receiverIndex: number, counter: number, packet: Uint8Array, off: number, len: number, limit: number): number {
  const padded = paddedLength(len, limit);
  const plain = new Uint8Array(padded);
  plain.set(packet.subarray(off, off + len));
  const nonce = counterNonce(counter);
  writeU32LE(out, 0, MSG_TRANSPORT);
  writeU32LE(out, TRANSPORT_RECEIVER, receiverIndex);
  out.set(nonce.subarray(4, 12), TRANSPORT_COUNTER);
  const sealed = aeadSealNonce(key, nonce, plain, new Uint8Array(0));
  out.set(sealed, TRANSPORT_HEADER_SIZE);
  return TRANSPORT_HEADER_SIZE + sealed.length;
}

/** The receiver index of a transport message. */
export function transportReceiver(msg: Uint8Array, off: number): number {
  return readU32LE(msg, off + TRANSPORT_RECEIVER);
}

/** The counter of a transport message, exact up to 2^53 (beyond: a number no counter reaches). */
export function transportCounter(msg: Uint8Array, off: number): number {
  return readU32LE(msg, off + TRANSPORT_COUNTER) + readU32LE(msg, off + TRANSPORT_COUNTER + 4) * 0x100000000;
}

/** The padded plaintext of a `len`-byte transport message at `off`, or undefined when it does not authenticate under `key`. */
export function openTransport(key: Uint8Array, msg: Uint8Array, off: number, len: number): Buffer | undefined {
  const nonce = new Uint8Array(12);
  nonce.set(msg.subarray(off + TRANSPORT_COUNTER, off + TRANSPORT_COUNTER + 8), 4);
  return aeadOpenNonce(key, nonce, msg.subarray(off + TRANSPORT_HEADER_SIZE, off + len), new Uint8Array(0));
}
