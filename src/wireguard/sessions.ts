// A node's WireGuard sessions, shared by both engines: its static key, the
// peers it may talk to (from the leases), the handshakes with them, the
// keypairs those yield, and the timers of whitepaper section 6, run on the
// clock seam so tests drive them on a manual clock. The transport itself
// (sealing, opening, counters, replay windows) is the dataplane's: the js
// engine's in TypeScript, the native engine's in its workers; what it tells
// the sessions is which peers want a session and, per keypair, when data
// last went and came (Keypair's activity fields).
//
//   dataplane --wantSession(peer)--------------> initiation -> sendHandshake
//   dataplane --receive(handshake messages)----> response / keypair / cookie
//   keypairs changed ---------------------------> dataplane.keypairsChanged()
//   tick (every TIMER_TICK_MS while any peer has state): confirm, expire,
//        retransmit or give up, keepalive, rekey
//
// Keypairs per peer, as wireguard-go keeps them: `current` (sending),
// `previous` (still received on), `next` (a responder's keypair, which
// becomes current once the initiator has sent on it: key confirmation).

import { randomBytes, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import { formatIp } from '../net/ipv4.js';
import { CookieChecker, CookieJar, cookieKey, mac1Key } from './cookie.js';
import {
  COOKIE_RECEIVER,
  HANDSHAKE_BURST,
  HANDSHAKES_PER_SECOND,
  INITIATION_MIN_INTERVAL_MS,
  KEEPALIVE_TIMEOUT_MS,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_AFTER_TIME_RECEIVING_MS,
  REKEY_ATTEMPT_TIME_MS,
  REKEY_TIMEOUT_JITTER_MS,
  REKEY_TIMEOUT_MS,
  RESP_RECEIVER,
  TIMER_TICK_MS,
  UNDER_LOAD_HOLD_MS,
  UNDER_LOAD_PER_SECOND,
  UNDER_LOAD_QUEUE,
} from './constants.js';
import { type KeyPair, dh, formatKey, generateKeyPair, keyPair, keysEqual } from './keys.js';
import { messageType, readU32LE } from './messages.js';
import { type InitiatorHandshake, consumeInitiation, consumeResponse, createInitiation, createResponse, deriveKeys } from './noise.js';
import { ReplayWindow } from './replay.js';
import { tai64n, tai64nAfter } from './tai64n.js';

/**
 * Retransmissions of an initiation before giving up, as wireguard-go counts
 * them: it gives up when a retransmission is due with more than
 * REKEY_ATTEMPT_TIME / REKEY_TIMEOUT (18) already sent, so 20 initiations
 * go out in all, the last about 95 s after the first.
 */
export const MAX_HANDSHAKE_RETRIES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS + 1;

/** Send counters at or past this start a rekey; as a number it is exact (a power of two), so no tick makes a BigInt. */
const REKEY_COUNTER = Number(REKEY_AFTER_MESSAGES);

/** A peer's keypair slots. */
const SLOTS = ['current', 'previous', 'next'] as const;

/** A peer as its lease describes it. */
export interface PeerSpec {
  /** Stable identity across key changes: its lease's subnet. */
  readonly id: string;
  readonly node: string;
  readonly key: Uint8Array;
  /** Underlay address and WireGuard port, from the lease: where we send, and the only source we accept. */
  readonly ip: number;
  readonly port: number;
}

/** A peer's sessions as /status shows them. */
export interface WireguardPeerStatus {
  readonly node: string;
  readonly key: string;
  readonly endpoint: string;
  /** Keypairs held (at most 3: current, previous, next). */
  readonly sessions: number;
  readonly lastHandshakeAgoS: number | null;
  /** up: a session to send on; connecting: a handshake in flight; failing: the last attempt gave up; idle: none needed yet. */
  readonly state: 'up' | 'connecting' | 'failing' | 'idle';
}

/** Why a handshake message was refused: each is a drop counter of the engine. */
export type HandshakeRefusal = 'unknown_sender' | 'unknown_key' | 'auth' | 'replay' | 'unknown_index' | 'cookie';

/** One session's keys and what the dataplane records of its use (times on the sessions' clock, ms). */
export interface Keypair {
  readonly peer: SessionPeer;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly sendKey: Uint8Array;
  readonly recvKey: Uint8Array;
  readonly initiator: boolean;
  readonly createdAt: number;
  /** Key confirmation: the initiator's keypairs are confirmed; a responder's once a transport message arrived on it. */
  confirmed: boolean;
  /** The js engine's transport state (the native engine keeps its own). */
  sendCounter: number;
  readonly replay: ReplayWindow;
  lastDataSent: number;
  lastDataReceived: number;
  /** Any authenticated transport message, keepalives included. */
  lastSent: number;
  lastReceived: number;
}

export interface SessionPeer {
  readonly id: string;
  node: string;
  key: Uint8Array;
  ip: number;
  port: number;
  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;
  /** DH(our static, its static), computed once per pair of keys. */
  staticStatic: Uint8Array | undefined;
  mac1Key: Uint8Array;
  readonly cookies: CookieJar;
  /** Our initiation in flight. */
  pending: (InitiatorHandshake & { sentAt: number; retryAt: number }) | undefined;
  lastInitiationSent: number;
  /** Retransmissions of the current attempt (0 for the first initiation). */
  retries: number;
  /** Its newest initiation timestamp accepted, and when: replays and floods are refused. */
  lastTimestamp: Uint8Array | undefined;
  lastInitiationConsumed: number;
  lastHandshake: number;
  /** When data sent went unanswered since (the 15-s new-handshake timer), or undefined. */
  unansweredSince: number | undefined;
  /** Handshake attempts given up since the last success. */
  failures: number;
}

/**
 * The keypair to send to `peer` on at `now`: a responder's next one as soon
 * as a transport message confirmed it (the timer makes it current a tick
 * later), else the current one; never one past Reject-After-Time.
 */
export function sendingKeypair(peer: SessionPeer, now: number): Keypair | undefined {
  const kp = peer.next?.confirmed ? peer.next : peer.current;
  return kp && now - kp.createdAt < REJECT_AFTER_TIME_MS ? kp : undefined;
}

/** What the sessions need from the dataplane. */
export interface SessionDataplane {
  /** Sends a handshake message (initiation, response, cookie reply) from the WireGuard port. */
  sendHandshake(ip: number, port: number, msg: Uint8Array): void;
  /** A peer's keypairs changed (installed, confirmed, retired): republish what the dataplane uses. */
  keypairsChanged(peer: SessionPeer): void;
  /** Our initiation was answered: send what waited for the session, or a keepalive when nothing did. */
  sessionReady(peer: SessionPeer): void;
  /** Sends a keepalive (an empty transport message) on the peer's current keypair. */
  sendKeepalive(peer: SessionPeer): void;
  /** The handshake gave up, or the peer left: drop what waited for it. */
  gaveUp(peer: SessionPeer): void;
  /** Brings every keypair's activity fields and `confirmed` up to date (the native engine reads its workers'). */
  refreshActivity(): void;
}

export interface SessionsOptions {
  readonly privateKey: Uint8Array;
  readonly clock: Clock;
  readonly dataplane: SessionDataplane;
  /** Counts a refused handshake message. */
  readonly refused: (why: HandshakeRefusal) => void;
  readonly log?: Logger;
}

/** A handshake message as the dataplane hands it over: mac1 already checked, and its source a node's address. */
export interface HandshakeMessage {
  readonly msg: Uint8Array;
  readonly srcIp: number;
}

/** Per-source token bucket for handshake messages under load. */
class RateLimiter {
  private readonly buckets = new Map<number, { tokens: number; at: number }>();
  allow(src: number, now: number): boolean {
    let b = this.buckets.get(src);
    if (!b) {
      if (this.buckets.size >= 4096) this.buckets.clear(); // bounded: sources may be spoofed
      b = { tokens: HANDSHAKE_BURST, at: now };
      this.buckets.set(src, b);
    }
    b.tokens = Math.min(HANDSHAKE_BURST, b.tokens + ((now - b.at) * HANDSHAKES_PER_SECOND) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export class WireguardSessions {
  private static_: KeyPair;
  private ourMac1Key: Uint8Array;
  private readonly checker: CookieChecker;
  private readonly peers = new Map<string, SessionPeer>();
  private readonly byKey = new Map<string, SessionPeer>();
  /** The peers by underlay address (one node's leases share it: any of them). */
  private readonly byIp = new Map<number, SessionPeer>();
  /** Our indices in use: a keypair's, or else its peer's `pending.localIndex` (a peer's pending index goes before it gets another). */
  private readonly indices = new Map<number, { peer: SessionPeer; keypair?: Keypair }>();
  private readonly limiter = new RateLimiter();
  private underLoadUntil = -Infinity;
  /** Handshake messages received in the second that started at `windowStart`. */
  private windowStart = -Infinity;
  private windowCount = 0;
  private tick: Timer | undefined;
  private lastTick = -Infinity;
  private closed = false;
  /** Initiations sent and handshakes completed (either role), for the engines' counters. */
  readonly stats = { initiationsSent: 0, handshakesCompleted: 0 };

  constructor(private readonly o: SessionsOptions) {
    this.static_ = keyPair(o.privateKey);
    this.ourMac1Key = mac1Key(this.static_.publicKey);
    this.checker = new CookieChecker(this.static_.publicKey);
  }

  get publicKey(): Uint8Array {
    return this.static_.publicKey;
  }

  /** The key mac1 of handshake messages to us is checked with (the dataplane's pre-check). */
  get mac1Key(): Uint8Array {
    return this.ourMac1Key;
  }

  peer(id: string): SessionPeer | undefined {
    return this.peers.get(id);
  }

  /** The keypair our receiver index `localIndex` names, if it is a session's (not a handshake in flight). */
  keypair(localIndex: number): Keypair | undefined {
    return this.indices.get(localIndex)?.keypair;
  }

  /** The peer at underlay address `ip`. */
  atIp(ip: number): SessionPeer | undefined {
    return this.byIp.get(ip);
  }

  allPeers(): IterableIterator<SessionPeer> {
    return this.peers.values();
  }

  /**
   * The peers with keys, as the leases say now. A peer whose key changed
   * keeps its keypairs (they rest on the handshake's ephemeral keys, not on
   * the static ones) and loses a handshake in flight to its old key; a peer
   * gone loses everything, what waited for its session included. Returns
   * each spec's peer, in `specs` order.
   */
  setPeers(specs: readonly PeerSpec[]): SessionPeer[] {
    const seen = new Set<string>();
    const out: SessionPeer[] = [];
    for (const s of specs) {
      seen.add(s.id);
      const p = this.peers.get(s.id);
      if (!p) {
        const peer: SessionPeer = {
          id: s.id,
          node: s.node,
          key: s.key,
          ip: s.ip,
          port: s.port,
          current: undefined,
          previous: undefined,
          next: undefined,
          staticStatic: dh(this.static_, s.key),
          mac1Key: mac1Key(s.key),
          cookies: new CookieJar(cookieKey(s.key)),
          pending: undefined,
          lastInitiationSent: -Infinity,
          retries: 0,
          lastTimestamp: undefined,
          lastInitiationConsumed: -Infinity,
          lastHandshake: -Infinity,
          unansweredSince: undefined,
          failures: 0,
        };
        this.peers.set(s.id, peer);
        this.byKey.set(formatKey(s.key), peer);
        out.push(peer);
        continue;
      }
      out.push(p);
      p.node = s.node;
      p.ip = s.ip;
      p.port = s.port;
      if (!keysEqual(p.key, s.key)) {
        this.byKey.delete(formatKey(p.key));
        p.key = s.key;
        this.byKey.set(formatKey(s.key), p);
        p.staticStatic = dh(this.static_, s.key);
        p.mac1Key = mac1Key(s.key);
        p.cookies.setPeerKey(s.key);
        p.lastTimestamp = undefined;
        this.dropPending(p);
      }
    }
    for (const [id, p] of this.peers) {
      if (seen.has(id)) continue;
      this.dropPending(p);
      this.retireAll(p);
      this.o.dataplane.gaveUp(p);
      this.peers.delete(id);
      this.byKey.delete(formatKey(p.key));
    }
    this.byIp.clear();
    for (const p of this.peers.values()) this.byIp.set(p.ip, p);
    return out;
  }

  /**
   * Our key rotated: new handshakes use the new one; keypairs in use stay
   * (their keys came from ephemeral DH), handshakes in flight are dropped.
   */
  setPrivateKey(privateKey: Uint8Array): void {
    this.static_ = keyPair(privateKey);
    this.ourMac1Key = mac1Key(this.static_.publicKey);
    this.checker.setPublicKey(this.static_.publicKey);
    for (const p of this.peers.values()) {
      p.staticStatic = dh(this.static_, p.key);
      this.dropPending(p);
    }
  }

  /** The dataplane has data for `peer` and no keypair to send it on (or a rekey is due): initiate, at most once per REKEY_TIMEOUT. */
  wantSession(peer: SessionPeer): void {
    this.initiate(peer, false);
  }

  /**
   * Handshake messages whose mac1 the dataplane checked and whose source is
   * a node's address. A batch of UNDER_LOAD_QUEUE (the dataplane's backlog)
   * or UNDER_LOAD_PER_SECOND messages within a second put the node under
   * load for a second: then a source's messages are limited in rate, and
   * initiations and responses need a valid mac2 (else they get a cookie
   * reply), so a flood costs a MAC per message, not a Diffie-Hellman.
   */
  receive(batch: readonly HandshakeMessage[]): void {
    if (this.closed) return;
    const now = this.o.clock.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    this.windowCount += batch.length;
    if (batch.length >= UNDER_LOAD_QUEUE || this.windowCount >= UNDER_LOAD_PER_SECOND) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
    const underLoad = now < this.underLoadUntil;
    for (const { msg, srcIp } of batch) {
      const type = messageType(msg, 0, msg.length);
      if (type === MSG_COOKIE_REPLY) {
        this.consumeCookieReply(msg, now);
        continue;
      }
      // Under load a source gets HANDSHAKES_PER_SECOND (burst HANDSHAKE_BURST) of our work, cookie replies included, and no DH without a valid mac2.
      if (underLoad) {
        if (!this.limiter.allow(srcIp, now)) {
          this.o.refused('cookie');
          continue;
        }
        if (!this.checker.mac2Valid(msg, srcIp, now)) {
          this.o.dataplane.sendHandshake(srcIp, this.byIp.get(srcIp)?.port ?? 0, this.checker.reply(msg, srcIp, now));
          this.o.refused('cookie');
          continue;
        }
      }
      if (type === MSG_INITIATION) this.consumeInitiation(msg, srcIp, now);
      else if (type === MSG_RESPONSE) this.consumeResponse(msg, srcIp, now);
    }
  }

  /** Per peer, for /status: keypairs, the last handshake, whether one is in flight or failing. */
  status(): WireguardPeerStatus[] {
    const now = this.o.clock.now();
    return [...this.peers.values()].map((p) => {
      const sessions = [p.current, p.previous, p.next].filter((k) => k !== undefined).length;
      const state = p.current ? 'up' : p.failures > 0 ? 'failing' : p.pending ? 'connecting' : 'idle';
      return { node: p.node, key: formatKey(p.key), endpoint: `${formatIp(p.ip)}:${p.port}`, sessions, lastHandshakeAgoS: Number.isFinite(p.lastHandshake) ? Math.round((now - p.lastHandshake) / 1000) : null, state };
    });
  }

  close(): void {
    this.closed = true;
    this.o.clock.clearTimeout(this.tick);
    this.tick = undefined;
  }

  // ---- handshakes

  private newIndex(peer: SessionPeer, keypair?: Keypair): number {
    let i: number;
    do i = randomBytes(4).readUInt32LE(0);
    while (i === 0 || this.indices.has(i));
    this.indices.set(i, keypair ? { peer, keypair } : { peer });
    return i;
  }

  private initiate(peer: SessionPeer, retry: boolean): void {
    if (this.closed || !peer.staticStatic) return;
    const now = this.o.clock.now();
    if (!retry) {
      if (now - peer.lastInitiationSent < REKEY_TIMEOUT_MS) return;
      peer.retries = 0;
    }
    this.dropPending(peer);
    const ephemeral = generateKeyPair();
    const localIndex = this.newIndex(peer);
    const made = createInitiation(this.static_, peer.key, peer.staticStatic, ephemeral, localIndex, tai64n(now));
    if (!made) {
      this.indices.delete(localIndex);
      return;
    }
    peer.cookies.seal(made.msg, peer.mac1Key, now);
    peer.pending = { ...made.state, sentAt: now, retryAt: now + REKEY_TIMEOUT_MS + randomInt(REKEY_TIMEOUT_JITTER_MS) };
    peer.lastInitiationSent = now;
    this.o.log?.debug({ event: 'wireguard_initiation', node: peer.node, retry: peer.retries }, 'handshake initiation sent');
    this.stats.initiationsSent++;
    this.o.dataplane.sendHandshake(peer.ip, peer.port, made.msg);
    this.startTicking();
  }

  private consumeInitiation(msg: Uint8Array, srcIp: number, now: number): void {
    let known: SessionPeer | undefined;
    let decrypted = false;
    const init = consumeInitiation(this.static_, msg, (peerStatic) => {
      decrypted = true;
      known = this.byKey.get(formatKey(peerStatic));
      return known?.staticStatic;
    });
    if (!init || !known) {
      // The static key decrypted but is no peer's (a node not keyed yet, or one whose new key we have not seen), or something did not authenticate.
      this.o.refused(decrypted && known === undefined ? 'unknown_key' : 'auth');
      return;
    }
    const peer = known;
    if (peer.ip !== srcIp) {
      this.o.refused('unknown_sender');
      return;
    }
    if ((peer.lastTimestamp && !tai64nAfter(init.timestamp, peer.lastTimestamp)) || now - peer.lastInitiationConsumed < INITIATION_MIN_INTERVAL_MS) {
      this.o.refused('replay');
      return;
    }
    const ephemeral = generateKeyPair();
    const localIndex = this.newIndex(peer);
    const made = createResponse(init, ephemeral, localIndex);
    if (!made) {
      this.indices.delete(localIndex);
      this.o.refused('auth');
      return;
    }
    peer.lastTimestamp = init.timestamp;
    peer.lastInitiationConsumed = now;
    peer.cookies.seal(made.msg, peer.mac1Key, now);
    const keys = deriveKeys(made.result, false);
    const kp = this.newKeypair(peer, localIndex, made.result.remoteIndex, keys, false, now);
    // A responder's keypair waits for key confirmation as `next`; an unconfirmed next and the previous one go.
    this.retire(peer.next);
    this.retire(peer.previous);
    peer.previous = undefined;
    peer.next = kp;
    this.sessionDerived(peer, now);
    // The dataplane knows the keypair before the initiator does: its first transport message may come back at once.
    this.o.dataplane.keypairsChanged(peer);
    this.o.dataplane.sendHandshake(peer.ip, peer.port, made.msg);
  }

  private consumeResponse(msg: Uint8Array, srcIp: number, now: number): void {
    const entry = this.indices.get(readU32LE(msg, RESP_RECEIVER));
    const peer = entry?.peer;
    const pending = peer?.pending;
    if (!peer || entry.keypair || !pending) {
      this.o.refused('unknown_index');
      return;
    }
    if (peer.ip !== srcIp) {
      this.o.refused('unknown_sender');
      return;
    }
    const result = consumeResponse(this.static_, pending, msg);
    if (!result) {
      this.o.refused('auth');
      return;
    }
    peer.pending = undefined;
    const keys = deriveKeys(result, true);
    const kp = this.newKeypair(peer, pending.localIndex, result.remoteIndex, keys, true, now);
    // As initiator the new keypair is current at once; an unconfirmed next becomes previous.
    if (peer.next) {
      this.retire(peer.previous);
      this.retire(peer.current);
      peer.previous = peer.next;
      peer.next = undefined;
    } else {
      this.retire(peer.previous);
      peer.previous = peer.current;
    }
    peer.current = kp;
    this.sessionDerived(peer, now);
    this.o.log?.debug({ event: 'wireguard_session', node: peer.node }, 'handshake completed (initiator)');
    this.o.dataplane.keypairsChanged(peer);
    this.o.dataplane.sessionReady(peer);
  }

  private consumeCookieReply(msg: Uint8Array, now: number): void {
    const entry = this.indices.get(readU32LE(msg, COOKIE_RECEIVER));
    if (!entry || entry.keypair || !entry.peer.pending) {
      this.o.refused('unknown_index');
      return;
    }
    if (!entry.peer.cookies.consume(msg, now)) this.o.refused('auth');
  }

  private newKeypair(peer: SessionPeer, localIndex: number, remoteIndex: number, keys: { send: Uint8Array; recv: Uint8Array }, initiator: boolean, now: number): Keypair {
    const kp: Keypair = {
      peer,
      localIndex,
      remoteIndex,
      sendKey: keys.send,
      recvKey: keys.recv,
      initiator,
      createdAt: now,
      confirmed: initiator,
      sendCounter: 0,
      replay: new ReplayWindow(),
      lastDataSent: -Infinity,
      lastDataReceived: -Infinity,
      lastSent: -Infinity,
      lastReceived: -Infinity,
    };
    this.indices.set(localIndex, { peer, keypair: kp });
    return kp;
  }

  private sessionDerived(peer: SessionPeer, now: number): void {
    this.stats.handshakesCompleted++;
    peer.lastHandshake = now;
    peer.retries = 0;
    peer.failures = 0;
    this.startTicking();
  }

  private dropPending(peer: SessionPeer): void {
    if (peer.pending) this.indices.delete(peer.pending.localIndex);
    peer.pending = undefined;
  }

  private retire(kp: Keypair | undefined): void {
    if (kp) this.indices.delete(kp.localIndex);
  }

  private retireAll(peer: SessionPeer): void {
    this.retire(peer.current);
    this.retire(peer.previous);
    this.retire(peer.next);
    peer.current = peer.previous = peer.next = undefined;
    this.o.dataplane.keypairsChanged(peer);
  }

  // ---- timers

  private startTicking(): void {
    if (this.tick || this.closed) return;
    this.tick = this.o.clock.setInterval(() => this.onTick(), TIMER_TICK_MS);
    this.tick.unref();
  }

  private onTick(): void {
    const now = this.o.clock.now();
    this.o.dataplane.refreshActivity();
    let active = false;
    for (const p of this.peers.values()) {
      this.confirmAndExpire(p, now);
      this.handshakeTimers(p, now);
      this.dataTimers(p, now);
      active ||= p.current !== undefined || p.previous !== undefined || p.next !== undefined || p.pending !== undefined;
    }
    this.lastTick = now;
    if (!active) {
      this.o.clock.clearTimeout(this.tick);
      this.tick = undefined;
    }
  }

  /** next becomes current once confirmed; keypairs past Reject-After-Time are retired. */
  private confirmAndExpire(p: SessionPeer, now: number): void {
    let changed = false;
    if (p.next?.confirmed) {
      this.retire(p.previous);
      p.previous = p.current;
      p.current = p.next;
      p.next = undefined;
      changed = true;
    }
    for (const slot of SLOTS) {
      const kp = p[slot];
      if (kp && now - kp.createdAt >= REJECT_AFTER_TIME_MS) {
        this.retire(kp);
        p[slot] = undefined;
        changed = true;
      }
    }
    if (changed) this.o.dataplane.keypairsChanged(p);
  }

  /** An unanswered initiation is retransmitted after REKEY_TIMEOUT (+ jitter), until REKEY_ATTEMPT_TIME has passed. */
  private handshakeTimers(p: SessionPeer, now: number): void {
    if (!p.pending || now < p.pending.retryAt) return;
    if (p.retries >= MAX_HANDSHAKE_RETRIES) {
      this.dropPending(p);
      p.failures++;
      p.unansweredSince = undefined;
      this.o.log?.warn({ event: 'wireguard_handshake_failed', node: p.node, attempts: p.retries + 1 }, `no WireGuard handshake with ${p.node} after ${p.retries + 1} initiations; dropping what waited for it`);
      this.o.dataplane.gaveUp(p);
      return;
    }
    p.retries++;
    this.initiate(p, true);
  }

  /** Keepalive after KEEPALIVE_TIMEOUT of received data unanswered; rekeys by age, message count, or data going unanswered. */
  private dataTimers(p: SessionPeer, now: number): void {
    let any = false;
    let lastDataReceived = -Infinity;
    let lastDataSent = -Infinity;
    let lastSent = -Infinity;
    let lastReceived = -Infinity;
    for (const slot of SLOTS) {
      const k = p[slot];
      if (!k) continue;
      any = true;
      lastDataReceived = Math.max(lastDataReceived, k.lastDataReceived);
      lastDataSent = Math.max(lastDataSent, k.lastDataSent);
      lastSent = Math.max(lastSent, k.lastSent);
      lastReceived = Math.max(lastReceived, k.lastReceived);
    }
    if (!any) return;
    if (p.current && lastDataReceived > lastSent && now - lastDataReceived >= KEEPALIVE_TIMEOUT_MS) this.o.dataplane.sendKeepalive(p);
    if (lastDataSent > lastReceived) p.unansweredSince ??= now;
    else p.unansweredSince = undefined;
    const cur = p.current;
    const sentSinceTick = lastDataSent >= this.lastTick;
    const receivedSinceTick = lastDataReceived >= this.lastTick;
    const due =
      (p.unansweredSince !== undefined && now - p.unansweredSince >= KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS) ||
      (cur !== undefined && cur.initiator && sentSinceTick && (now - cur.createdAt >= REKEY_AFTER_TIME_MS || cur.sendCounter >= REKEY_COUNTER)) ||
      (cur !== undefined && cur.initiator && receivedSinceTick && now - cur.createdAt >= REKEY_AFTER_TIME_RECEIVING_MS);
    if (due) {
      if (p.unansweredSince !== undefined && now - p.unansweredSince >= KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS) p.unansweredSince = now;
      this.initiate(p, false);
    }
  }
}
