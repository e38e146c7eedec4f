// WireGuard's four message types on the wire: telling them apart by type
// and length, and reading their little-endian fields. A datagram that is
// none of them (an unknown type, nonzero reserved bytes, a wrong length for
// its type) is refused before anything else is looked at.

import { COOKIE_REPLY_SIZE, INITIATION_SIZE, KEEPALIVE_SIZE, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT, RESPONSE_SIZE } from './constants.js';

/** Not a WireGuard message. */
export const MSG_MALFORMED = 0;

export function readU32LE(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

export function writeU32LE(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/**
 * The message type of `len` bytes at `off` (MSG_INITIATION ... MSG_TRANSPORT),
 * or MSG_MALFORMED: the type is one little-endian u32 (the three bytes after
 * the type byte are zero), handshake messages have their exact sizes and a
 * transport message is at least a keepalive long.
 */
export function messageType(b: Uint8Array, off: number, len: number): number {
  if (len < 4) return MSG_MALFORMED;
  const type = readU32LE(b, off);
  switch (type) {
    case MSG_INITIATION:
      return len === INITIATION_SIZE ? type : MSG_MALFORMED;
    case MSG_RESPONSE:
      return len === RESPONSE_SIZE ? type : MSG_MALFORMED;
    case MSG_COOKIE_REPLY:
      return len === COOKIE_REPLY_SIZE ? type : MSG_MALFORMED;
    case MSG_TRANSPORT:
      return len >= KEEPALIVE_SIZE ? type : MSG_MALFORMED;
    default:
      return MSG_MALFORMED;
  }
}
