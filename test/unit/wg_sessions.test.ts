// Two nodes' WireGuard sessions over a recording dataplane, on a manual
// clock: the handshake both ways and the keys it gives, what is refused
// (replays, floods, strangers, wrong sources, unknown indices), cookies
// under load, crossing initiations, key rotation, and the timers: retry
// every 5 s and give up after 90 s, rekey at 120 s or 2^60 messages sent, expiry at 180 s,
// keepalive after 10 s, a new handshake when data goes unanswered 15 s.

import { describe, expect, it } from 'vitest';
import { mac1Valid } from '../../src/wireguard/cookie.js';
import {
  COOKIE_REPLY_SIZE,
  HANDSHAKE_BURST,
  INITIATION_SIZE,
  KEEPALIVE_TIMEOUT_MS,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_TIMEOUT_JITTER_MS,
  REKEY_TIMEOUT_MS,
  RESPONSE_SIZE,
  TIMER_TICK_MS,
  UNDER_LOAD_QUEUE,
} from '../../src/wireguard/constants.js';
import { formatKey, generateKeyPair } from '../../src/wireguard/keys.js';
import { type HandshakeRefusal, type Keypair, MAX_HANDSHAKE_RETRIES, type SessionDataplane, type SessionPeer, WireguardSessions, sendingKeypair } from '../../src/wireguard/sessions.js';
import { ManualClock } from '../harness/manual_clock.js';

const IP_A = 0xc6120001;
const IP_B = 0xc6120002;
const PORT = 51820;

class Node implements SessionDataplane {
  readonly outbox: { ip: number; port: number; msg: Uint8Array }[] = [];
  readonly refusals: HandshakeRefusal[] = [];
  readonly ready: string[] = [];
  readonly keepalives: string[] = [];
  readonly gaveUps: string[] = [];
  changes = 0;
  refreshes = 0;
  key = generateKeyPair();
  readonly s: WireguardSessions;

  constructor(readonly ip: number, clock: ManualClock) {
    this.s = new WireguardSessions({ privateKey: this.key.privateKey, clock, dataplane: this, refused: (why) => this.refusals.push(why) });
  }
  sendHandshake(ip: number, port: number, msg: Uint8Array): void {
    this.outbox.push({ ip, port, msg: Uint8Array.from(msg) });
  }
  keypairsChanged(): void {
    this.changes++;
  }
  sessionReady(p: SessionPeer): void {
    this.ready.push(p.node);
  }
  sendKeepalive(p: SessionPeer): void {
    this.keepalives.push(p.node);
    if (p.current) p.current.lastSent = this.now();
  }
  gaveUp(p: SessionPeer): void {
    this.gaveUps.push(p.node);
  }
  refreshActivity(): void {
    this.refreshes++;
  }
  now = (): number => 0;
  peerOf(other: Node): SessionPeer {
    return this.s.peer(other === this ? '' : `id-${other.ip}`)!;
  }
  know(...others: Node[]): void {
    this.s.setPeers(others.map((o) => ({ id: `id-${o.ip}`, node: `node-${o.ip & 0xff}`, key: o.key.publicKey, ip: o.ip, port: PORT })));
  }
}

function pair(clock = new ManualClock()): { clock: ManualClock; a: Node; b: Node } {
  const a = new Node(IP_A, clock);
  const b = new Node(IP_B, clock);
  a.now = b.now = () => clock.now();
  a.know(b);
  b.know(a);
  return { clock, a, b };
}

/** Delivers what `from` sent to `to`, checking mac1 as the dataplane does; `src` overrides the source address. */
function deliver(from: Node, to: Node, src = from.ip): Uint8Array[] {
  const msgs = from.outbox.splice(0).filter((m) => m.ip === to.ip).map((m) => m.msg);
  for (const msg of msgs) expect(mac1Valid(msg, to.s.mac1Key)).toBe(true);
  to.s.receive(msgs.map((msg) => ({ msg, srcIp: src })));
  return msgs;
}

function handshake(a: Node, b: Node): void {
  a.s.wantSession(a.peerOf(b));
  deliver(a, b);
  deliver(b, a);
}

const keys = (k: Keypair | undefined): string => (k ? `${Buffer.from(k.sendKey).toString('hex')}/${Buffer.from(k.recvKey).toString('hex')}` : 'none');

describe('WireGuard sessions: handshakes', () => {
  it('an initiation and its response give both sides the same keys, crossed; the responder holds its keypair as next until confirmed', () => {
    const { a, b } = pair();
    a.s.wantSession(a.peerOf(b));
    const [init] = deliver(a, b);
    expect(init!.length).toBe(INITIATION_SIZE);
    const [resp] = deliver(b, a);
    expect(resp!.length).toBe(RESPONSE_SIZE);
    const ak = a.peerOf(b).current!;
    const bk = b.peerOf(a).next!;
    expect(ak.initiator && ak.confirmed).toBe(true);
    expect(bk.initiator || bk.confirmed).toBe(false);
    expect(b.peerOf(a).current).toBeUndefined();
    expect(Buffer.from(ak.sendKey).equals(Buffer.from(bk.recvKey))).toBe(true);
    expect(Buffer.from(ak.recvKey).equals(Buffer.from(bk.sendKey))).toBe(true);
    expect(ak.remoteIndex).toBe(bk.localIndex);
    expect(bk.remoteIndex).toBe(ak.localIndex);
    expect(a.ready).toEqual(['node-2']);
    expect(a.refusals.concat(b.refusals)).toEqual([]);
  });

  it('refuses a replayed initiation, a second within 20 ms, and one from another address', async () => {
    const { clock, a, b } = pair();
    a.s.wantSession(a.peerOf(b));
    const [init] = a.outbox.map((m) => m.msg);
    deliver(a, b);
    b.outbox.length = 0;
    b.s.receive([{ msg: init!, srcIp: IP_A }]);
    expect(b.refusals).toEqual(['replay']);
    expect(b.outbox).toEqual([]);
    await clock.advance(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MS + TIMER_TICK_MS); // a retries: a new, later timestamp
    const [retry] = a.outbox.splice(0).map((m) => m.msg);
    b.s.receive([{ msg: retry!, srcIp: 0xc6120063 }]);
    expect(b.refusals).toEqual(['replay', 'unknown_sender']);
    b.s.receive([{ msg: retry!, srcIp: IP_A }]);
    expect(b.outbox.length).toBe(1);
  });

  it('refuses an initiation from a key it does not know, and responses and cookies to no initiation of its own', () => {
    const { clock, a, b } = pair();
    const stranger = new Node(0xc6120009, clock);
    stranger.know(b);
    stranger.s.wantSession(stranger.s.peer(`id-${IP_B}`)!);
    deliver(stranger, b);
    expect(b.refusals).toEqual(['unknown_key']);
    handshake(a, b);
    const resp = new Uint8Array(RESPONSE_SIZE);
    resp[0] = 2;
    a.s.receive([{ msg: resp, srcIp: IP_B }]);
    const cookie = new Uint8Array(COOKIE_REPLY_SIZE);
    cookie[0] = 3;
    a.s.receive([{ msg: cookie, srcIp: IP_B }]);
    expect(a.refusals).toEqual(['unknown_index', 'unknown_index']);
  });

  it('refuses a response whose sealed empty payload was tampered with', () => {
    const { a, b } = pair();
    a.s.wantSession(a.peerOf(b));
    deliver(a, b);
    const resp = b.outbox.splice(0)[0]!.msg;
    resp[50] = resp[50]! ^ 1;
    a.s.receive([{ msg: resp, srcIp: IP_B }]);
    expect(a.refusals).toEqual(['auth']);
    expect(a.peerOf(b).current).toBeUndefined();
  });

  it('under load answers initiations without mac2 with a cookie reply; the initiator then gets through with mac2', async () => {
    const { clock, a, b } = pair();
    a.s.wantSession(a.peerOf(b));
    const init = a.outbox.splice(0)[0]!.msg;
    // A batch of UNDER_LOAD_QUEUE messages puts b under load: a's first HANDSHAKE_BURST without a valid mac2 get a cookie reply, the rest nothing.
    b.s.receive(Array.from({ length: UNDER_LOAD_QUEUE }, () => ({ msg: init, srcIp: IP_A })));
    expect(b.refusals.filter((r) => r === 'cookie').length).toBe(UNDER_LOAD_QUEUE);
    const replies = b.outbox.splice(0);
    expect(replies.length).toBe(HANDSHAKE_BURST);
    expect(replies.every((r) => r.msg.length === COOKIE_REPLY_SIZE && r.ip === IP_A && r.port === PORT)).toBe(true);
    a.s.receive([{ msg: replies[0]!.msg, srcIp: IP_B }]);
    expect(a.refusals).toEqual([]);
    await clock.advance(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MS + TIMER_TICK_MS);
    const withCookie = a.outbox.splice(0)[0]!.msg;
    expect(Buffer.from(withCookie.subarray(132)).equals(Buffer.alloc(16))).toBe(false);
    // Still under load (another long batch): the initiation with a valid mac2 gets its response, the others cookies.
    b.s.receive([{ msg: withCookie, srcIp: IP_A }, ...Array.from({ length: UNDER_LOAD_QUEUE - 1 }, () => ({ msg: init, srcIp: IP_A }))]);
    const answers = b.outbox.splice(0);
    expect(answers.filter((r) => r.msg.length === RESPONSE_SIZE).length).toBe(1);
    expect(answers.filter((r) => r.msg.length === COOKIE_REPLY_SIZE).length).toBe(HANDSHAKE_BURST - 1);
  });

  it('crossing initiations leave each side sending on the keypair it initiated and receiving on the other', () => {
    const { a, b } = pair();
    a.s.wantSession(a.peerOf(b));
    b.s.wantSession(b.peerOf(a));
    const fromA = a.outbox.splice(0);
    const fromB = b.outbox.splice(0);
    b.s.receive(fromA.map((m) => ({ msg: m.msg, srcIp: IP_A })));
    a.s.receive(fromB.map((m) => ({ msg: m.msg, srcIp: IP_B })));
    deliver(a, b); // responses
    deliver(b, a);
    const pa = a.peerOf(b);
    const pb = b.peerOf(a);
    expect(pa.current!.initiator && pb.current!.initiator).toBe(true);
    expect(keys(pa.current)).not.toBe(keys(pa.previous));
    // What a sends on (its current) b receives on its previous, and the other way round.
    expect(Buffer.from(pa.current!.sendKey).equals(Buffer.from(pb.previous!.recvKey))).toBe(true);
    expect(Buffer.from(pb.current!.sendKey).equals(Buffer.from(pa.previous!.recvKey))).toBe(true);
  });

  it('keeps sessions across a key rotation; new handshakes need the new key on both sides', () => {
    const { a, b } = pair();
    handshake(a, b);
    const before = keys(a.peerOf(b).current);
    const rotated = generateKeyPair();
    b.key = rotated;
    b.s.setPrivateKey(rotated.privateKey);
    expect(formatKey(b.s.publicKey)).toBe(formatKey(rotated.publicKey));
    expect(keys(a.peerOf(b).current)).toBe(before);
    // a still has b's old key: its initiation's mac1 is made for the old key, which b refuses before any DH.
    a.peerOf(b).lastInitiationSent = -Infinity;
    a.s.wantSession(a.peerOf(b));
    expect(mac1Valid(a.outbox.splice(0)[0]!.msg, b.s.mac1Key)).toBe(false);
    // b's initiation to a carries its new static key, which a does not know yet.
    b.s.wantSession(b.peerOf(a));
    deliver(b, a);
    expect(a.refusals).toEqual(['unknown_key']);
    a.know(b); // the lease with b's new key arrives
    expect(keys(a.peerOf(b).current)).toBe(before);
    b.peerOf(a).lastInitiationSent = -Infinity;
    handshake(b, a);
    expect(b.peerOf(a).current, 'a session with the new key').toBeDefined();
    expect(keys(b.peerOf(a).current)).not.toBe(before);
  });
});

describe('WireGuard sessions: timers (manual clock)', () => {
  it('retransmits an unanswered initiation every 5 s (plus under 334 ms of jitter) and gives up after 90 s of retries, 20 initiations in all as wireguard-go', async () => {
    const { clock, a, b } = pair();
    a.s.wantSession(a.peerOf(b));
    const times: number[] = [0];
    a.outbox.length = 0;
    const t0 = clock.now();
    for (let t = 0; t < 120_000; t += TIMER_TICK_MS) {
      await clock.advance(TIMER_TICK_MS);
      if (a.outbox.length > 0) {
        times.push(clock.now() - t0);
        a.outbox.length = 0;
      }
    }
    expect(times.length).toBe(MAX_HANDSHAKE_RETRIES + 1);
    expect(times.length).toBe(20);
    for (let i = 1; i < times.length; i++) {
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(REKEY_TIMEOUT_MS);
      expect(times[i]! - times[i - 1]!).toBeLessThan(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MS + TIMER_TICK_MS);
    }
    expect(times.at(-1)!).toBeGreaterThanOrEqual(90_000);
    expect(a.gaveUps).toEqual(['node-2']);
    expect(a.s.status()[0]!.state).toBe('failing');
    // Data for the peer later starts a new attempt at once.
    a.s.wantSession(a.peerOf(b));
    expect(a.outbox.length).toBe(1);
  });

  it('sends at most one initiation per 5 s however often data asks', async () => {
    const { clock, a, b } = pair();
    for (let i = 0; i < 20; i++) {
      a.s.wantSession(a.peerOf(b));
      await clock.advance(200);
    }
    expect(a.outbox.length).toBe(1);
  });

  it('the initiator rekeys once its keypair is 120 s old and it sends; keypairs expire at 180 s', async () => {
    const { clock, a, b } = pair();
    handshake(a, b);
    const first = a.peerOf(b).current!;
    await clock.advance(REKEY_AFTER_TIME_MS - 1000);
    first.lastDataSent = clock.now();
    await clock.advance(TIMER_TICK_MS);
    expect(a.outbox.length).toBe(0);
    await clock.advance(1000);
    first.lastDataSent = clock.now();
    await clock.advance(TIMER_TICK_MS);
    expect(a.outbox.length).toBe(1);
    expect(a.outbox[0]!.msg.length).toBe(INITIATION_SIZE);
    // The responder never rekeys by age: b, sending on its keypair past 120 s, initiates nothing.
    b.peerOf(a).next!.confirmed = true;
    await clock.advance(TIMER_TICK_MS);
    b.peerOf(a).current!.lastDataSent = clock.now();
    await clock.advance(TIMER_TICK_MS);
    expect(b.outbox.length).toBe(0);
    await clock.advance(REJECT_AFTER_TIME_MS - REKEY_AFTER_TIME_MS);
    expect(a.peerOf(b).current).toBeUndefined();
    expect(b.peerOf(a).current).toBeUndefined();
  });

  it('the initiator rekeys once it has sent Rekey-After-Messages on its keypair', async () => {
    const { clock, a, b } = pair();
    handshake(a, b);
    const kp = a.peerOf(b).current!;
    await clock.advance(REKEY_TIMEOUT_MS);
    kp.sendCounter = Number(REKEY_AFTER_MESSAGES) - 128; // the largest number below 2^60
    kp.lastDataSent = clock.now();
    await clock.advance(TIMER_TICK_MS);
    expect(a.outbox.length).toBe(0);
    kp.sendCounter = Number(REKEY_AFTER_MESSAGES);
    kp.lastDataSent = clock.now();
    await clock.advance(TIMER_TICK_MS);
    expect(a.outbox.map((m) => m.msg.length)).toEqual([INITIATION_SIZE]);
  });

  it('sends a keepalive 10 s after data arrived unanswered, and none while it answers', async () => {
    const { clock, a, b } = pair();
    handshake(a, b);
    const kp = a.peerOf(b).current!;
    kp.lastDataReceived = clock.now();
    await clock.advance(KEEPALIVE_TIMEOUT_MS - TIMER_TICK_MS);
    expect(a.keepalives).toEqual([]);
    await clock.advance(2 * TIMER_TICK_MS);
    expect(a.keepalives).toEqual(['node-2']);
    await clock.advance(KEEPALIVE_TIMEOUT_MS);
    expect(a.keepalives).toEqual(['node-2']);
    kp.lastDataReceived = clock.now();
    kp.lastSent = clock.now() + 1;
    await clock.advance(2 * KEEPALIVE_TIMEOUT_MS);
    expect(a.keepalives).toEqual(['node-2']);
  });

  it('starts a new handshake when data sent goes unanswered for 15 s', async () => {
    const { clock, a, b } = pair();
    handshake(a, b);
    a.outbox.length = 0;
    const kp = a.peerOf(b).current!;
    kp.lastReceived = clock.now();
    await clock.advance(1000);
    kp.lastDataSent = clock.now();
    await clock.advance(KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS - 2 * TIMER_TICK_MS);
    expect(a.outbox.length).toBe(0);
    await clock.advance(3 * TIMER_TICK_MS);
    expect(a.outbox.length).toBe(1);
  });

  it('promotes a confirmed next keypair to current, keeping the old current as previous', async () => {
    const { clock, a, b } = pair();
    handshake(a, b);
    handshake(b, a);
    const pa = a.peerOf(b);
    expect(pa.next).toBeDefined();
    const next = pa.next!;
    const cur = pa.current!;
    expect(sendingKeypair(pa, clock.now())).toBe(cur);
    next.confirmed = true;
    expect(sendingKeypair(pa, clock.now())).toBe(next); // sent on at once, before the tick promotes it
    expect(sendingKeypair(pa, next.createdAt + REJECT_AFTER_TIME_MS)).toBeUndefined();
    await clock.advance(TIMER_TICK_MS);
    expect(pa.current).toBe(next);
    expect(pa.previous).toBe(cur);
    expect(pa.next).toBeUndefined();
  });

  it('forgets a peer whose lease went, and stops ticking once no peer has state', async () => {
    const { clock, a, b } = pair();
    handshake(a, b);
    a.s.setPeers([]);
    expect(a.s.peer(`id-${IP_B}`)).toBeUndefined();
    expect(a.gaveUps).toEqual(['node-2']); // what waited for its session is dropped, not kept until close
    await clock.advance(TIMER_TICK_MS);
    const refreshes = a.refreshes;
    await clock.advance(10 * TIMER_TICK_MS);
    expect(a.refreshes).toBe(refreshes);
    expect(clock.pending).toBeLessThanOrEqual(1); // b still ticks for its keypair
  });
});
