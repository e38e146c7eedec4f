// The VXLAN-GPE header (draft-ietf-nvo3-vxlan-gpe), 8 bytes, as docs/architecture.md "Wire format" fixes it.
//
//   byte 0   flags: R R Ver Ver I P B O   (we send 0x0c: I and P set)
//   byte 1-2 reserved
//   byte 3   next protocol (0x01 IPv4, 0x02 IPv6)
//   byte 4-6 VNI, big-endian
//   byte 7   reserved

import {
  GPE_FLAG_I,
  GPE_FLAG_O,
  GPE_FLAG_P,
  GPE_FLAGS,
  GPE_VERSION_MASK,
  VXLAN_GPE_HEADER_LEN,
} from '../constants.js';

/** Result of checking a received header; the non-OK values name drop reasons. */
export const enum GpeCheck {
  Ok = 0,
  Short = 1,
  BadFlags = 2,
  WrongVni = 3,
  NextProto = 4,
}

export function writeGpeHeader(buf: Uint8Array, off: number, vni: number, nextProto: number): void {
  buf[off] = GPE_FLAGS;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = nextProto;
  buf[off + 4] = (vni >>> 16) & 0xff;
  buf[off + 5] = (vni >>> 8) & 0xff;
  buf[off + 6] = vni & 0xff;
  buf[off + 7] = 0;
}

export function readGpeVni(buf: Uint8Array, off: number): number {
  return (buf[off + 4]! << 16) | (buf[off + 5]! << 8) | buf[off + 6]!;
}

/**
 * Checks a datagram of `len` bytes at `off` as a VXLAN-GPE frame for `vni`
 * that carries `wantProto`. Version must be 0, I and P set, O (OAM) clear;
 * reserved bits and B are ignored, as the draft asks of receivers.
 */
export function checkGpeHeader(buf: Uint8Array, off: number, len: number, vni: number, wantProto: number): GpeCheck {
  if (len < VXLAN_GPE_HEADER_LEN) return GpeCheck.Short;
  const flags = buf[off]!;
  if ((flags & GPE_VERSION_MASK) !== 0 || (flags & GPE_FLAG_I) === 0 || (flags & GPE_FLAG_P) === 0 || (flags & GPE_FLAG_O) !== 0) {
    return GpeCheck.BadFlags;
  }
  if (readGpeVni(buf, off) !== vni) return GpeCheck.WrongVni;
  if (buf[off + 3] !== wantProto) return GpeCheck.NextProto;
  return GpeCheck.Ok;
}
