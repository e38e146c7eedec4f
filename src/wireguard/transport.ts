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
import { aeadOpenNonce, aeadSealInPlace, setCounterNonce } from './primitives.js';

/** The padded plaintext length of a `len`-byte packet under `limit` (no padding at or past it). */
export function paddedLength(len: number, limit: number): number {
  if (len >= limit) return len;
  return Math.min((len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1), limit);
}

/** Bytes of the transport message carrying a `len`-byte packet under padding `limit`. */
export function transportLength(len: number, limit: number): number {
  return TRANSPORT_HEADER_SIZE + paddedLength(len, limit) + AEAD_TAG_SIZE;
}

/** The nonce of the message being sealed or opened: the cipher copies it, so one serves every call. */
const nonce = Buffer.alloc(12);

/**
 * Writes the transport message of packet[off, off + len) into `out` at 0
 * (it must hold transportLength(len, limit) bytes, and not overlap the
 * packet) for the peer's `receiverIndex`, sealed under `key` with
 * `counter`; returns its length. The packet and its padding are sealed in
 * place in `out`: nothing is allocated but what node:crypto's cipher does.
 */
export function sealTransport(out: Uint8Array, key: Uint8Array, receiverIndex: number, counter: number, packet: Uint8Array, off: number, len: number, limit: number): number {
  const padded = paddedLength(len, limit);
  writeU32LE(out, 0, MSG_TRANSPORT);
  writeU32LE(out, TRANSPORT_RECEIVER, receiverIndex);
  setCounterNonce(nonce, counter);
  for (let i = 0; i < 8; i++) out[TRANSPORT_COUNTER + i] = nonce[4 + i]!;
  out.set(packet.subarray(off, off + len), TRANSPORT_HEADER_SIZE);
  out.fill(0, TRANSPORT_HEADER_SIZE + len, TRANSPORT_HEADER_SIZE + padded);
  aeadSealInPlace(key, nonce, out, TRANSPORT_HEADER_SIZE, padded);
  return TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_SIZE;
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
  for (let i = 0; i < 8; i++) nonce[4 + i] = msg[off + TRANSPORT_COUNTER + i]!;
  return aeadOpenNonce(key, nonce, msg.subarray(off + TRANSPORT_HEADER_SIZE, off + len));
}
