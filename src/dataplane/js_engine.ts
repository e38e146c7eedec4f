// The js engine: the readable reference dataplane in TypeScript over a TUN
// port and UDP transports. Same behaviour as the native engine; slower.
//
//   inside:  TUN batch -> classifyInside -> peer in VXLAN-GPE: [8-byte header | packet] -> UDP to the owning node
//                                       \-> peer in WireGuard: transport message on its session -> the WireGuard port
//                                           (no session yet: the packet waits, and the sessions start a handshake)
//                                       \-> ICMP net-unreachable back into the TUN
//   outside: VXLAN-GPE datagram -> acceptOutside -> inner packet -> TUN
//            WireGuard datagram -> precheckWireguard -> handshake message: queued for the sessions
//                                                   \-> transport: openWireguard -> acceptInner -> TUN

import { GPE_NEXT_PROTO_IPV4, JS_TUN_BATCH, PEER_WIREGUARD, VXLAN_GPE_HEADER_LEN } from '../constants.js';
import type { RouteTable } from '../routes/route_table.js';
import { KEEPALIVE_SIZE, MSG_TRANSPORT, STAGED_PER_PEER } from '../wireguard/constants.js';
import { MSG_MALFORMED } from '../wireguard/messages.js';
import { type HandshakeMessage, type Keypair, type SessionPeer, sendingKeypair } from '../wireguard/sessions.js';
import { sealTransport, transportLength } from '../wireguard/transport.js';
import { ICMP_ERROR_MAX, ICMP_NET_UNREACHABLE, flowHash, icmpErrorLength, writeIcmpUnreachable } from '../wire/ipv4_packet.js';
import { writeGpeHeader } from '../wire/vxlan_gpe.js';
import { C, COUNTER_NAMES, type CounterSnapshot, snapshot } from './counters.js';
import type { Engine, EngineConfig, EngineDetails, WireguardPeerStatus } from './engine.js';
import { EngineSessions, HANDSHAKES_PER_TURN, wireguardPortError } from './engine_sessions.js';
import { IcmpBudget } from './icmp_budget.js';
import { INSIDE_DROP, INSIDE_UNREACHABLE, classifyInside } from './inside.js';
import { acceptInner, acceptOutside } from './outside.js';
import { openWireguard, precheckWireguard } from './wireguard_outside.js';
import type { TunPort } from '../host/tun_port.js';
import type { SendDone, UdpTransport } from '../host/udp_transport.js';

/** A keepalive's payload. */
const EMPTY = new Uint8Array(0);
/** Send buffers in flight at most; past that, packets are dropped as send errors. */
const SEND_POOL = 256;
/** Handshake messages waiting for the sessions at most (as the kernel's queue); past that, dropped and counted. */
const HANDSHAKE_QUEUE = 4096;

/** A send buffer and its completion callback, bound once so a send allocates no closure. */
interface SendSlot {
  readonly buf: Buffer;
  /** Inner bytes in flight, counted when the send completes. */
  len: number;
  readonly done: SendDone;
}

export class JsEngine implements Engine {
  readonly kind = 'js' as const;
  private table: RouteTable;
  private readonly c = new Float64Array(COUNTER_NAMES.length);
  private readonly freeSlots: SendSlot[] = [];
  private readonly icmpScratch: Buffer;
  private readonly icmpBudget = new IcmpBudget();
  /** TUN read slots: one byte above the MTU, so a packet the kernel cut to fit fills its slot and shows. */
  private readonly readSlot: number;
  private started = false;
  private closed = false;

  private readonly wg: EngineSessions;
  /** The WireGuard port, once enableWireguard() opened it. */
  private wgPort: UdpTransport | undefined;
  private padLimit: number;
  /** Packets waiting for a peer's session (at most STAGED_PER_PEER, the oldest dropped first). */
  private readonly staged = new Map<SessionPeer, Buffer[]>();
  private readonly handshakes: HandshakeMessage[] = [];
  private handshakesScheduled = false;
  /** The keypair a receiver index names, bound once: opening a datagram allocates no closure. */
  private readonly keypairOf = (localIndex: number): Keypair | undefined => this.wg.sessions.keypair(localIndex);

  /** `wgTransport` opens the WireGuard port (sending from it too: WireGuard peers answer the port they hear from). */
  constructor(
    private readonly cfg: EngineConfig,
    private readonly tun: TunPort,
    private readonly udp: UdpTransport,
    initial: RouteTable,
    private readonly wgTransport: (port: number) => UdpTransport,
  ) {
    this.table = initial;
    this.readSlot = cfg.mtu + 1;
    this.padLimit = cfg.mtu;
    this.icmpScratch = Buffer.alloc(ICMP_ERROR_MAX);
    for (let i = 0; i < SEND_POOL; i++) {
      const slot: SendSlot = {
        buf: Buffer.alloc(Math.max(cfg.mtu + VXLAN_GPE_HEADER_LEN, transportLength(cfg.mtu, cfg.mtu))),
        len: 0,
        done: (err) => {
          if (!err) {
            this.c[C.inside_packets]!++;
            this.c[C.inside_bytes]! += slot.len;
          } else this.c[C.inside_drop_send_error]!++;
          this.freeSlots.push(slot);
        },
      };
      this.freeSlots.push(slot);
    }
    this.wg = new EngineSessions(cfg, {
      sendHandshake: (ip, port, msg) => this.wgPort?.send(Buffer.from(msg), msg.length, ip, port, 0, () => undefined),
      keypairsChanged: (p) => this.flushStaged(p),
      sessionReady: (p) => {
        if (!this.flushStaged(p)) this.sendKeepalive(p);
      },
      sendKeepalive: (p) => this.sendKeepalive(p),
      gaveUp: (p) => this.dropStaged(p),
      refreshActivity: () => undefined,
    });
  }

  async start(): Promise<void> {
    if (this.started || this.closed) throw new Error('engine already started or closed');
    this.started = true;
    await this.udp.start((buf, len, srcIp) => this.outside(buf, len, srcIp));
    this.tun.startReading(
      this.readSlot,
      JS_TUN_BATCH,
      (slab, lengths, count) => this.inside(slab, lengths, count),
      () => this.c[C.inside_drop_read_error]!++,
    );
  }

  setRoutes(table: RouteTable): void {
    this.table = table;
    this.wg.setTable(table);
  }

  async enableWireguard(padLimit: number): Promise<void> {
    this.padLimit = padLimit;
    if (this.wgPort || this.closed) return;
    const wg = this.wgTransport(this.cfg.wireguard.port);
    try {
      await wg.start((buf, len, srcIp) => this.outsideWireguard(buf, len, srcIp));
    } catch (err) {
      await wg.close(); // its socket is open though unbound: weftd retries every config poll
      throw wireguardPortError(this.cfg.wireguard.port, err);
    }
    if (this.closed) {
      await wg.close(); // close() ran during the bind: a later engine must be able to bind the port
      return;
    }
    this.wgPort = wg;
  }

  setWireguardKey(privateKey: Uint8Array): void {
    this.wg.sessions.setPrivateKey(privateKey);
  }

  wireguardPeers(): WireguardPeerStatus[] {
    return this.wg.sessions.status();
  }

  healthy(): boolean {
    return this.started && !this.closed && !this.tun.failed;
  }

  details(): EngineDetails {
    return { queues: 1 };
  }

  counters(): CounterSnapshot {
    const sums = Float64Array.from(this.c);
    this.wg.addTo(sums);
    return snapshot(sums);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wg.sessions.close();
    this.tun.close();
    await this.udp.close();
    await this.wgPort?.close();
  }

  // ---- inside

  private inside(slab: Buffer, lengths: Uint32Array, count: number): void {
    const slot = this.readSlot;
    const table = this.table;
    const now = this.cfg.clock.now();
    for (let i = 0; i < count; i++) {
      const off = i * slot;
      const len = lengths[i]!;
      if (len === slot) {
        this.c[C.inside_drop_read_error]!++; // cut by the kernel: longer than the MTU weft configured
        continue;
      }
      const peer = classifyInside(slab, off, len, table, this.c);
      if (peer === INSIDE_DROP) continue;
      if (peer === INSIDE_UNREACHABLE) {
        this.sendUnreachable(slab, off, len);
        continue;
      }
      if ((table.peerFlagsAt(peer) & PEER_WIREGUARD) !== 0) {
        this.insideWireguard(peer, slab, off, len, now);
        continue;
      }
      const out = this.freeSlots.pop();
      if (out === undefined) {
        this.c[C.inside_drop_send_error]!++;
        continue;
      }
      writeGpeHeader(out.buf, 0, this.cfg.vni, GPE_NEXT_PROTO_IPV4);
      slab.copy(out.buf, VXLAN_GPE_HEADER_LEN, off, off + len);
      out.len = len;
      this.udp.send(out.buf, len + VXLAN_GPE_HEADER_LEN, table.peerIpAt(peer), table.peerPortAt(peer), flowHash(slab, off, len), out.done);
    }
  }

  /** A packet for a peer spoken to in WireGuard: sent on its session, or kept until the handshake completes. */
  private insideWireguard(peer: number, pkt: Buffer, off: number, len: number, now: number): void {
    const sp = this.wg.of(peer);
    if (!sp || !this.wgPort) {
      this.c[C.inside_drop_no_session]!++;
      return;
    }
    if (this.seal(sp, pkt, off, len, now)) return;
    let queue = this.staged.get(sp);
    if (!queue) this.staged.set(sp, (queue = []));
    if (queue.length >= STAGED_PER_PEER) {
      queue.shift();
      this.c[C.inside_drop_no_session]!++;
    }
    queue.push(Buffer.from(pkt.subarray(off, off + len)));
    this.wg.sessions.wantSession(sp);
  }

  /** Sends packet[off, off+len) (len 0: a keepalive) to `sp` on its session at `now` (the clock read once per batch); false when it has none. */
  private seal(sp: SessionPeer, pkt: Uint8Array, off: number, len: number, now: number): boolean {
    const kp = sendingKeypair(sp, now);
    if (!kp || !this.wgPort) return false;
    const out = this.freeSlots.pop();
    if (out === undefined) {
      this.c[C.inside_drop_send_error]!++;
      return true;
    }
    const n = sealTransport(out.buf, kp.sendKey, kp.remoteIndex, kp.sendCounter++, pkt, off, len, this.padLimit);
    kp.lastSent = now;
    if (len > 0) kp.lastDataSent = now;
    out.len = len;
    this.wgPort.send(out.buf, n, sp.ip, sp.port, 0, len > 0 ? out.done : () => this.freeSlots.push(out));
    return true;
  }

  private sendKeepalive(sp: SessionPeer): void {
    this.seal(sp, EMPTY, 0, 0, this.cfg.clock.now());
  }

  /** Sends what waited for `sp`'s session, if it has one now; whether anything was sent. */
  private flushStaged(sp: SessionPeer): boolean {
    const queue = this.staged.get(sp);
    if (!queue) return false;
    const now = this.cfg.clock.now();
    if (!sendingKeypair(sp, now)) return false;
    this.staged.delete(sp);
    for (const p of queue) this.seal(sp, p, 0, p.length, now);
    return queue.length > 0;
  }

  private dropStaged(sp: SessionPeer): void {
    this.c[C.inside_drop_no_session]! += this.staged.get(sp)?.length ?? 0;
    this.staged.delete(sp);
  }

  private sendUnreachable(pkt: Buffer, off: number, len: number): void {
    if (icmpErrorLength(pkt, off, len) > this.icmpScratch.length) return;
    if (!this.icmpBudget.take(performance.now())) {
      this.c[C.inside_icmp_rate_limited]!++;
      return;
    }
    const n = writeIcmpUnreachable(this.icmpScratch, pkt, off, len, this.cfg.tunAddr, ICMP_NET_UNREACHABLE);
    if (this.tun.write(this.icmpScratch, 0, n)) this.c[C.inside_icmp_unreachable]!++;
  }

  // ---- outside

  private outside(buf: Buffer, len: number, srcIp: number): void {
    const table = this.table;
    if (!acceptOutside(buf, 0, len, srcIp, table, this.cfg.self, this.cfg.vni, this.c)) return;
    const inner = VXLAN_GPE_HEADER_LEN;
    this.deliver(buf, inner, (buf[inner + 2]! << 8) | buf[inner + 3]!);
  }

  private outsideWireguard(buf: Buffer, len: number, srcIp: number): void {
    const type = precheckWireguard(buf, 0, len, srcIp, this.table, this.wg.sessions.mac1Key, this.c);
    if (type === MSG_MALFORMED) return;
    if (type !== MSG_TRANSPORT) {
      this.queueHandshake(buf, len, srcIp);
      return;
    }
    const plain = openWireguard(buf, 0, len, srcIp, this.keypairOf, this.cfg.clock.now(), this.c);
    if (!plain || len === KEEPALIVE_SIZE) return;
    if (!acceptInner(plain, 0, plain.length, srcIp, this.table, this.cfg.self, this.c)) return;
    this.deliver(plain, 0, plain.readUInt16BE(2));
  }

  private deliver(buf: Buffer, off: number, len: number): void {
    if (!this.tun.write(buf, off, len)) {
      this.c[C.outside_drop_tun_write]!++;
      return;
    }
    this.c[C.outside_packets]!++;
    this.c[C.outside_bytes]! += len;
  }

  /** Queues a handshake message for the sessions, taken in batches on later turns of the event loop. */
  private queueHandshake(buf: Buffer, len: number, srcIp: number): void {
    if (this.handshakes.length >= HANDSHAKE_QUEUE) {
      this.c[C.outside_drop_wg_queue_full]!++;
      return;
    }
    this.handshakes.push({ msg: Buffer.from(buf.subarray(0, len)), srcIp });
    if (this.handshakesScheduled) return;
    this.handshakesScheduled = true;
    setImmediate(() => this.takeHandshakes());
  }

  private takeHandshakes(): void {
    this.handshakesScheduled = false;
    if (this.closed) return;
    // The batch's length is how far behind the node is: the sessions answer with cookies when it is long.
    this.wg.sessions.receive(this.handshakes.splice(0, HANDSHAKES_PER_TURN));
    if (this.handshakes.length > 0) {
      this.handshakesScheduled = true;
      setImmediate(() => this.takeHandshakes());
    }
  }
}
