// mac1, mac2 and cookies (whitepaper 5.3 and 5.4.7). mac1 on every
// handshake message proves the sender knows the recipient's public key and
// is checked before any Diffie-Hellman; under load a responder also wants a
// valid mac2, made with a cookie it handed out in a cookie reply, so a
// flood from spoofed addresses costs it one MAC per message.
//
//   mac1 = MAC(HASH("mac1----" || recipient public), msg[0 : mac1 offset])
//   mac2 = MAC(cookie, msg[0 : mac2 offset])          (16 zero bytes without a fresh cookie)
//   cookie = MAC(secret renewed every 2 minutes, the sender's address)
//   cookie reply = type 3 | receiver | nonce 24 | XAEAD(HASH("cookie--" || responder public), nonce, cookie, aad = the answered message's mac1)

import { randomBytes } from 'node:crypto';
import {
  COOKIE_ENCRYPTED,
  COOKIE_MAX_AGE_MS,
  COOKIE_NONCE,
  COOKIE_NONCE_SIZE,
  COOKIE_RECEIVER,
  COOKIE_REPLY_SIZE,
  COOKIE_SECRET_MAX_AGE_MS,
  INIT_MAC1,
  INIT_MAC2,
  INIT_SENDER,
  INITIATION_SIZE,
  LABEL_COOKIE,
  LABEL_MAC1,
  MAC_SIZE,
  MSG_COOKIE_REPLY,
  RESP_MAC1,
  RESP_MAC2,
  RESP_SENDER,
} from './constants.js';
import { writeU32 } from '../wire/ipv4_packet.js';
import { readU32LE, writeU32LE } from './messages.js';
import { hash, mac, xaeadOpen, xaeadSeal } from './primitives.js';

const enc = new TextEncoder();

/** The key mac1 is made with for messages to the owner of `publicKey`. */
export function mac1Key(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_MAC1), publicKey);
}

/** The key cookie replies from the owner of `publicKey` are encrypted with. */
export function cookieKey(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_COOKIE), publicKey);
}

/** Where mac1 sits in a handshake message of this length (148: initiation, 92: response). */
function mac1Offset(msg: Uint8Array): number {
  return msg.length === INITIATION_SIZE ? INIT_MAC1 : RESP_MAC1;
}

function mac2Offset(msg: Uint8Array): number {
  return msg.length === INITIATION_SIZE ? INIT_MAC2 : RESP_MAC2;
}

function equal16(a: Uint8Array, aOff: number, b: Uint8Array): boolean {
  let diff = 0;
  for (let i = 0; i < MAC_SIZE; i++) diff |= a[aOff + i]! ^ b[i]!;
  return diff === 0;
}

/** Writes mac1 (with `recipientMac1Key`) and mac2 (with `cookie`, else zeros) into a handshake message. */
export function writeMacs(msg: Uint8Array, recipientMac1Key: Uint8Array, cookie: Uint8Array | undefined): void {
  const m1 = mac1Offset(msg);
  const m2 = mac2Offset(msg);
  msg.set(mac(recipientMac1Key, msg.subarray(0, m1)), m1);
  if (cookie) msg.set(mac(cookie, msg.subarray(0, m2)), m2);
  else msg.fill(0, m2, m2 + MAC_SIZE);
}

/** Whether a received handshake message's mac1 is right for us (`ourMac1Key`). Constant time. */
export function mac1Valid(msg: Uint8Array, ourMac1Key: Uint8Array): boolean {
  const m1 = mac1Offset(msg);
  return equal16(msg, m1, mac(ourMac1Key, msg.subarray(0, m1)));
}

/** The sender index of a handshake message (initiation or response). */
export function handshakeSender(msg: Uint8Array): number {
  return readU32LE(msg, msg.length === INITIATION_SIZE ? INIT_SENDER : RESP_SENDER);
}

/**
 * The responder's side: a secret renewed every two minutes, the cookie of a
 * source address, the check of mac2, and the cookie reply. `now` is the
 * caller's clock (ms).
 */
export class CookieChecker {
  private secret: Uint8Array = randomBytes(32);
  private secretAt = -Infinity;
  private encryptionKey: Uint8Array;

  constructor(ourPublicKey: Uint8Array) {
    this.encryptionKey = cookieKey(ourPublicKey);
  }

  /** After our key changed: replies are encrypted under the new one. */
  setPublicKey(ourPublicKey: Uint8Array): void {
    this.encryptionKey = cookieKey(ourPublicKey);
  }

  private cookie(source: number, now: number): Uint8Array {
    if (now - this.secretAt >= COOKIE_SECRET_MAX_AGE_MS) {
      this.secret = randomBytes(32);
      this.secretAt = now;
    }
    const a = new Uint8Array(4);
    writeU32(a, 0, source);
    return mac(this.secret, a);
  }

  /** Whether the message's mac2 was made with the current cookie of `source` (an IPv4 address). */
  mac2Valid(msg: Uint8Array, source: number, now: number): boolean {
    const m2 = mac2Offset(msg);
    return equal16(msg, m2, mac(this.cookie(source, now), msg.subarray(0, m2)));
  }

  /** The 64-byte cookie reply to `msg` from `source`. */
  reply(msg: Uint8Array, source: number, now: number): Uint8Array {
    const out = new Uint8Array(COOKIE_REPLY_SIZE);
    writeU32LE(out, 0, MSG_COOKIE_REPLY);
    writeU32LE(out, COOKIE_RECEIVER, handshakeSender(msg));
    const nonce = randomBytes(COOKIE_NONCE_SIZE);
    out.set(nonce, COOKIE_NONCE);
    const m1 = mac1Offset(msg);
    out.set(xaeadSeal(this.encryptionKey, nonce, this.cookie(source, now), msg.subarray(m1, m1 + MAC_SIZE)), COOKIE_ENCRYPTED);
    return out;
  }
}

/** The initiator's side, per peer: the mac1 of the last message sent it, and the cookie it handed us. */
export class CookieJar {
  private lastMac1: Uint8Array | undefined;
  private cookie: Uint8Array | undefined;
  private cookieAt = -Infinity;

  constructor(private decryptionKey: Uint8Array) {}

  /** The peer's key changed: its cookie replies come under the new one, and an old cookie is void. */
  setPeerKey(peerPublicKey: Uint8Array): void {
    this.decryptionKey = cookieKey(peerPublicKey);
    this.cookie = undefined;
  }

  /** Writes mac1 and mac2 into a message we send the peer, and remembers mac1 (a cookie reply answers it). */
  seal(msg: Uint8Array, peerMac1Key: Uint8Array, now: number): void {
    writeMacs(msg, peerMac1Key, now - this.cookieAt < COOKIE_MAX_AGE_MS ? this.cookie : undefined);
    const m1 = mac1Offset(msg);
    this.lastMac1 = msg.slice(m1, m1 + MAC_SIZE);
  }

  /** Takes a cookie reply (already matched to this peer by its receiver index); false when it does not decrypt. */
  consume(reply: Uint8Array, now: number): boolean {
    if (!this.lastMac1) return false;
    const cookie = xaeadOpen(this.decryptionKey, reply.subarray(COOKIE_NONCE, COOKIE_NONCE + COOKIE_NONCE_SIZE), reply.subarray(COOKIE_ENCRYPTED, COOKIE_REPLY_SIZE), this.lastMac1);
    if (!cookie) return false;
    this.cookie = new Uint8Array(cookie);
    this.cookieAt = now;
    return true;
  }
}
