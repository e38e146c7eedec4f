// Netlink as bytes: building requests (a header, a family header,
// attributes), reading the kernel's replies, and one conversation through
// the addon (native/netlink.cc), which only moves the bytes. Pure but for
// netlinkTransact; rtnetlink.ts and nft_counters.ts speak their families
// with it. Control-plane rate only.

import { getSystemErrorName } from 'node:util';
import { WeftError } from '../errors.js';
import { loadAddon } from './addon.js';

export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
const NLM_F_ACK_TLVS = 0x200;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSGERR_ATTR_MSG = 1;
const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: type, length, payload, padded to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(align4(NLA_HDRLEN + payload.length));
  b.writeUInt16LE(NLA_HDRLEN + payload.length, 0);
  b.writeUInt16LE(type, 2);
  b.set(payload, NLA_HDRLEN);
  return b;
}

/**
 * An attribute holding `children`, flagged nested as the kernel's strict
 * parsers want (`flagged` false for the older nests iproute2 sends without
 * the flag, which the kernel parses either way).
 */
export function nested(type: number, children: readonly Buffer[], flagged = true): Buffer {
  return attr(flagged ? type | NLA_F_NESTED : type, Buffer.concat(children));
}

export const flagAttr = (type: number): Buffer => attr(type, Buffer.alloc(0));
export const u8Attr = (type: number, v: number): Buffer => attr(type, Buffer.from([v]));
export const u16Attr = (type: number, v: number): Buffer => attr(type, le(2, v));
export const u32Attr = (type: number, v: number): Buffer => attr(type, le(4, v));
export const be16Attr = (type: number, v: number): Buffer => attr(type, be(2, v));
export const be32Attr = (type: number, v: number): Buffer => attr(type, be(4, v));
export const be64Attr = (type: number, v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return attr(type, b);
};
/** A NUL-terminated string, as the kernel's NLA_STRING / NLA_NUL_STRING take it. */
export const strAttr = (type: number, s: string): Buffer => attr(type, Buffer.from(`${s}\0`, 'utf8'));

function le(bytes: 2 | 4, v: number): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 2) b.writeUInt16LE(v);
  else b.writeUInt32LE(v >>> 0);
  return b;
}

function be(bytes: 2 | 4, v: number): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 2) b.writeUInt16BE(v);
  else b.writeUInt32BE(v >>> 0);
  return b;
}

/** A request: the netlink header's type and flags, then its body (family header and attributes). */
export interface NlRequest {
  readonly type: number;
  readonly flags: number;
  readonly body: Buffer;
}

/** The requests back to back, numbered from `firstSeq` in order. */
export function encodeRequests(requests: readonly NlRequest[], firstSeq = 1): Buffer {
  return Buffer.concat(
    requests.map((r, i) => {
      const b = Buffer.alloc(align4(NLMSG_HDRLEN + r.body.length));
      b.writeUInt32LE(NLMSG_HDRLEN + r.body.length, 0);
      b.writeUInt16LE(r.type, 4);
      b.writeUInt16LE(r.flags, 6);
      b.writeUInt32LE(firstSeq + i, 8);
      b.set(r.body, NLMSG_HDRLEN);
      return b;
    }),
  );
}

/** A reply: header fields and the body after the header. */
export interface NlMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly body: Buffer;
}

/** The messages in `buf`, back to back; throws (EPROTO) on a length that does not fit. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let at = 0;
  while (at + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(at);
    if (len < NLMSG_HDRLEN || at + len > buf.length) throw protoError(`a netlink message of ${len} bytes at offset ${at} of ${buf.length}`);
    out.push({ type: buf.readUInt16LE(at + 4), flags: buf.readUInt16LE(at + 6), seq: buf.readUInt32LE(at + 8), body: buf.subarray(at + NLMSG_HDRLEN, at + len) });
    at += align4(len);
  }
  return out;
}

/**
 * The attributes in `buf` from `offset`, by type (the nested and byte-order
 * bits masked off; a repeated type keeps the last). Throws (EPROTO) on an
 * attribute longer than what holds it.
 */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let at = offset;
  while (at + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(at);
    if (len < NLA_HDRLEN || at + len > buf.length) throw protoError(`a netlink attribute of ${len} bytes at offset ${at} of ${buf.length}`);
    out.set(buf.readUInt16LE(at + 2) & NLA_TYPE_MASK, buf.subarray(at + NLA_HDRLEN, at + len));
    at += align4(len);
  }
  return out;
}

/** A NUL-terminated string attribute's text. */
export function attrString(b: Buffer | undefined): string | undefined {
  if (b === undefined) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

function protoError(what: string): WeftError {
  return new WeftError('WEFT_HOST_SETUP', `netlink: the kernel's reply does not parse: ${what}`, { errno: 'EPROTO' });
}

/** What the kernel answered to one request. */
export interface NlAnswer {
  /** 0 when it was done (acked, or the dump ended), else the errno (positive). */
  readonly error: number;
  /** The kernel's own words on a refusal (extended ack), when it gave any. */
  readonly extack?: string;
  /** The data messages (a GET's reply, a dump's parts), in order. */
  readonly messages: NlMessage[];
  /** A dump that changed while it was taken (NLM_F_DUMP_INTR): take it again. */
  readonly interrupted: boolean;
}

/** Sorts `replies` to the requests they answer: request i had sequence number firstSeq + i. */
export function sortAnswers(count: number, replies: readonly NlMessage[], firstSeq = 1): NlAnswer[] {
  const out = Array.from({ length: count }, () => ({ error: 0, extack: undefined as string | undefined, messages: [] as NlMessage[], interrupted: false }));
  for (const m of replies) {
    const a = out[m.seq - firstSeq];
    if (a === undefined) continue;
    if ((m.flags & NLM_F_DUMP_INTR) !== 0) a.interrupted = true;
    if (m.type === NLMSG_DONE) continue;
    if (m.type !== NLMSG_ERROR) {
      a.messages.push(m);
      continue;
    }
    if (m.body.length < 4) throw protoError(`an error message of ${m.body.length} bytes`);
    a.error = -m.body.readInt32LE(0) || 0;
    // With NETLINK_CAP_ACK the failed request's header alone follows the error, then the TLVs.
    if ((m.flags & NLM_F_ACK_TLVS) !== 0) a.extack = attrString(parseAttrs(m.body, 4 + NLMSG_HDRLEN).get(NLMSGERR_ATTR_MSG));
  }
  return out.map(({ extack, ...rest }) => (extack === undefined ? rest : { ...rest, extack }));
}

/** One conversation: sends `requests` on a fresh socket of `protocol` and returns each one's answer, in order. Throws WEFT_HOST_SETUP when the socket fails. */
export function netlinkTransact(protocol: number, requests: readonly NlRequest[]): NlAnswer[] {
  if (requests.length === 0) return [];
  let replies: Buffer;
  try {
    replies = loadAddon().netlinkTransact(protocol, encodeRequests(requests));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new WeftError('WEFT_HOST_SETUP', `netlink: ${(err as Error).message}`, { errno: code }, { cause: err });
  }
  return sortAnswers(requests.length, parseMessages(replies));
}

/** The errno's name, as Node spells it (ENODEV). */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `E${errno}`;
  }
}

/** A refusal as weft names it: the errno's name, then the kernel's own words in parentheses when it gave any. */
export function answerText(a: NlAnswer): string {
  return `${errnoName(a.error)}${a.extack ? ` (${a.extack})` : ''}`;
}

/** Throws WEFT_HOST_SETUP naming `what`, the errno and the kernel's words, unless `a` succeeded. */
export function expectDone(a: NlAnswer, what: string): NlAnswer {
  if (a.error === 0) return a;
  throw new WeftError('WEFT_HOST_SETUP', `${what}: ${answerText(a)}`, { errno: errnoName(a.error), ...(a.extack ? { extack: a.extack } : {}) });
}
