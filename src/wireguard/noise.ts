// The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake of WireGuard
// (whitepaper 5.4.2-5.4.6): building and consuming the initiation and the
// response, and the transport keys both sides derive. Pure functions over
// explicit state; which peer, which index, the clock and the replay rules
// are the caller's (sessions.ts). mac1/mac2 are cookie.ts's.
//
//   initiator                                responder
//   createInitiation ---- type 1 (148 B) ---> consumeInitiation
//   consumeResponse <---- type 2 (92 B) ----- createResponse
//   deriveKeys(initiator)                     deriveKeys(responder)

import {
  CONSTRUCTION,
  IDENTIFIER,
  INIT_EPHEMERAL,
  INIT_SENDER,
  INIT_STATIC,
  INIT_TIMESTAMP,
  INITIATION_SIZE,
  KEY_SIZE,
  MSG_INITIATION,
  MSG_RESPONSE,
  RESP_EMPTY,
  RESP_EPHEMERAL,
  RESP_RECEIVER,
  RESP_SENDER,
  RESPONSE_SIZE,
  TAI64N_SIZE,
} from './constants.js';
import { type KeyPair, dh } from './keys.js';
import { readU32LE, writeU32LE } from './messages.js';
import { aeadOpen, aeadSeal, hash, kdf } from './primitives.js';

const enc = new TextEncoder();
/** C0 = HASH(Construction), H0 = HASH(C0 || Identifier). */
export const INITIAL_CHAIN_KEY = hash(enc.encode(CONSTRUCTION));
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, enc.encode(IDENTIFIER));
/** weft uses no pre-shared key: Q is 32 zero bytes. */
const ZERO_PSK = new Uint8Array(KEY_SIZE);
const EMPTY = new Uint8Array(0);

/** What the initiator keeps between its initiation and the response. */
export interface InitiatorHandshake {
  readonly localIndex: number;
  readonly ephemeral: KeyPair;
  readonly hash: Uint8Array;
  readonly chainKey: Uint8Array;
}

/** What the responder learns from an initiation it could decrypt. */
export interface ConsumedInitiation {
  readonly peerStatic: Uint8Array;
  readonly remoteIndex: number;
  readonly remoteEphemeral: Uint8Array;
  readonly timestamp: Uint8Array;
  readonly hash: Uint8Array;
  readonly chainKey: Uint8Array;
}

/** The chaining key a completed handshake leaves, from which deriveKeys() makes the transport keys. */
export interface HandshakeResult {
  readonly chainKey: Uint8Array;
  /** The peer's sender index: the receiver index of everything we send it. */
  readonly remoteIndex: number;
}

/**
 * A 148-byte initiation to `peerStatic` (its mac1 and mac2 left zero),
 * from our static `ours`, with `ephemeral`, our `localIndex`, `timestamp`
 * (TAI64N) and `staticStatic` = DH(ours, peerStatic), which callers compute
 * once per peer. Undefined when DH(ephemeral, peerStatic) is zero.
 */
export function createInitiation(
  ours: KeyPair,
  peerStatic: Uint8Array,
  staticStatic: Uint8Array,
  ephemeral: KeyPair,
  localIndex: number,
  timestamp: Uint8Array,
): { msg: Uint8Array; state: InitiatorHandshake } | undefined {
  const msg = new Uint8Array(INITIATION_SIZE);
  writeU32LE(msg, 0, MSG_INITIATION);
  writeU32LE(msg, INIT_SENDER, localIndex);
  let h = hash(INITIAL_HASH, peerStatic);
  let [c] = kdf(1, INITIAL_CHAIN_KEY, ephemeral.publicKey) as [Uint8Array];
  msg.set(ephemeral.publicKey, INIT_EPHEMERAL);
  h = hash(h, ephemeral.publicKey);
  const es = dh(ephemeral, peerStatic);
  if (!es) return undefined;
  let k: Uint8Array;
  [c, k] = kdf(2, c, es) as [Uint8Array, Uint8Array];
  const encStatic = aeadSeal(k, ours.publicKey, h);
  msg.set(encStatic, INIT_STATIC);
  h = hash(h, encStatic);
  [c, k] = kdf(2, c, staticStatic) as [Uint8Array, Uint8Array];
  const encTimestamp = aeadSeal(k, timestamp, h);
  msg.set(encTimestamp, INIT_TIMESTAMP);
  h = hash(h, encTimestamp);
  return { msg, state: { localIndex, ephemeral, hash: h, chainKey: c } };
}

/**
 * Decrypts an initiation sent to `ours`. `staticStaticOf(peerStatic)` gives
 * DH(ours, peerStatic) for a known peer, undefined for a stranger (and for
 * a zero DH). Undefined when the message does not authenticate or names no
 * known peer; the caller applies the timestamp and flood rules.
 */
export function consumeInitiation(ours: KeyPair, msg: Uint8Array, staticStaticOf: (peerStatic: Uint8Array) => Uint8Array | undefined): ConsumedInitiation | undefined {
  const ephemeralPub = msg.slice(INIT_EPHEMERAL, INIT_EPHEMERAL + KEY_SIZE);
  let h = hash(INITIAL_HASH, ours.publicKey);
  let [c] = kdf(1, INITIAL_CHAIN_KEY, ephemeralPub) as [Uint8Array];
  h = hash(h, ephemeralPub);
  const es = dh(ours, ephemeralPub);
  if (!es) return undefined;
  let k: Uint8Array;
  [c, k] = kdf(2, c, es) as [Uint8Array, Uint8Array];
  const encStatic = msg.subarray(INIT_STATIC, INIT_STATIC + KEY_SIZE + 16);
  const peerStatic = aeadOpen(k, encStatic, h);
  if (!peerStatic) return undefined;
  h = hash(h, encStatic);
  const ss = staticStaticOf(peerStatic);
  if (!ss) return undefined;
  [c, k] = kdf(2, c, ss) as [Uint8Array, Uint8Array];
  const encTimestamp = msg.subarray(INIT_TIMESTAMP, INIT_TIMESTAMP + TAI64N_SIZE + 16);
  const timestamp = aeadOpen(k, encTimestamp, h);
  if (!timestamp) return undefined;
  h = hash(h, encTimestamp);
  return { peerStatic: new Uint8Array(peerStatic), remoteIndex: readU32LE(msg, INIT_SENDER), remoteEphemeral: ephemeralPub, timestamp: new Uint8Array(timestamp), hash: h, chainKey: c };
}

/**
 * The 92-byte response to a consumed initiation (mac1 and mac2 left zero),
 * from our `localIndex` with a fresh `ephemeral`; undefined when a DH is zero.
 */
export function createResponse(init: ConsumedInitiation, ephemeral: KeyPair, localIndex: number): { msg: Uint8Array; result: HandshakeResult } | undefined {
  const msg = new Uint8Array(RESPONSE_SIZE);
  writeU32LE(msg, 0, MSG_RESPONSE);
  writeU32LE(msg, RESP_SENDER, localIndex);
  writeU32LE(msg, RESP_RECEIVER, init.remoteIndex);
  msg.set(ephemeral.publicKey, RESP_EPHEMERAL);
  let h = hash(init.hash, ephemeral.publicKey);
  let [c] = kdf(1, init.chainKey, ephemeral.publicKey) as [Uint8Array];
  const ee = dh(ephemeral, init.remoteEphemeral);
  const se = dh(ephemeral, init.peerStatic);
  if (!ee || !se) return undefined;
  [c] = kdf(1, c, ee) as [Uint8Array];
  [c] = kdf(1, c, se) as [Uint8Array];
  const [c3, tau, k] = kdf(3, c, ZERO_PSK) as [Uint8Array, Uint8Array, Uint8Array];
  h = hash(h, tau);
  msg.set(aeadSeal(k, EMPTY, h), RESP_EMPTY);
  return { msg, result: { chainKey: c3, remoteIndex: init.remoteIndex } };
}

/** Completes our initiation with its response; undefined when the response does not authenticate. */
export function consumeResponse(ours: KeyPair, state: InitiatorHandshake, msg: Uint8Array): HandshakeResult | undefined {
  const ephemeralPub = msg.slice(RESP_EPHEMERAL, RESP_EPHEMERAL + KEY_SIZE);
  let h = hash(state.hash, ephemeralPub);
  let [c] = kdf(1, state.chainKey, ephemeralPub) as [Uint8Array];
  const ee = dh(state.ephemeral, ephemeralPub);
  const se = dh(ours, ephemeralPub);
  if (!ee || !se) return undefined;
  [c] = kdf(1, c, ee) as [Uint8Array];
  [c] = kdf(1, c, se) as [Uint8Array];
  const [c3, tau, k] = kdf(3, c, ZERO_PSK) as [Uint8Array, Uint8Array, Uint8Array];
  h = hash(h, tau);
  if (!aeadOpen(k, msg.subarray(RESP_EMPTY, RESP_EMPTY + 16), h)) return undefined;
  return { chainKey: c3, remoteIndex: readU32LE(msg, RESP_SENDER) };
}

/** The transport keys of a completed handshake: KDF2(C, empty), the first the initiator's sending key. */
export function deriveKeys(result: HandshakeResult, initiator: boolean): { send: Uint8Array; recv: Uint8Array } {
  const [a, b] = kdf(2, result.chainKey, EMPTY) as [Uint8Array, Uint8Array];
  return initiator ? { send: a, recv: b } : { send: b, recv: a };
}
