// The native engine's TypeScript side: validates and hands the C++ engine
// (native/dataplane.cc) its TUN queues, whole route tables, and memory for
// counters it reads without calling into native. With encryption, it runs
// the WireGuard sessions (src/wireguard, shared with the js engine) for the
// workers: it installs each session's keys once and publishes which peer
// uses which with every table, takes the handshake messages the workers
// pre-checked in batches when they say some wait, and reads the sessions'
// activity for the timers on each of their ticks. No packet crosses.

import { COUNTER_NAMES, type CounterSnapshot, snapshot } from './counters.js';
import type { Engine, EngineConfig, EngineDetails, WireguardPeerStatus } from './engine.js';
import { EngineSessions, HANDSHAKES_PER_TURN, wireguardPortError } from './engine_sessions.js';
import { WG_ACTIVITY_ROW, WG_TAKE_ENTRY, loadAddon, type NativeEngineHandle, type WeftAddon } from '../host/addon.js';
import type { TunDevice } from '../host/tun_port.js';
import type { RouteTable } from '../routes/route_table.js';
import { type HandshakeMessage, type Keypair, type SessionPeer, sendingKeypair } from '../wireguard/sessions.js';

/** The techniques that can be switched off, to measure each one or to work around a kernel. */
export interface NativeOffloads {
  /** The TUN queues were opened with vnet headers: TSO super-packets in, GRO super-packets out. */
  readonly vnetHdr: boolean;
  readonly udpGso: boolean;
  readonly udpGro: boolean;
}

export class NativeEngine implements Engine {
  readonly kind = 'native' as const;
  private readonly addon: WeftAddon;
  /** Counter blocks, one per worker; the workers write them, counters() sums them. */
  private readonly counterSlots: BigUint64Array;
  private handle: NativeEngineHandle | undefined;
  private table: RouteTable;
  private closed = false;

  private readonly wg: EngineSessions;
  private wgOn = false;
  private padLimit: number;
  /** Keypairs installed in the engine, by our index. */
  private readonly installed = new Set<number>();
  private readonly takeBuf = Buffer.alloc(HANDSHAKES_PER_TURN * WG_TAKE_ENTRY);
  private readonly wantBuf = new Uint32Array(1024);
  private activityBuf = new Float64Array(WG_ACTIVITY_ROW * 64);
  private taking = false;
  /** Keypairs changed since the last publish. */
  private stale = false;
  /** What the sessions sent since then (handshake messages, keepalives): sent after the publish, at the end of this turn. */
  private readonly outbox: (() => void)[] = [];
  private flushQueued = false;

  constructor(
    private readonly cfg: EngineConfig,
    private readonly queues: readonly TunDevice[],
    private readonly offloads: NativeOffloads,
    initial: RouteTable,
  ) {
    if (queues.length < 1) throw new RangeError('the native engine needs at least one TUN queue');
    this.addon = loadAddon();
    if (this.addon.COUNTER_NAMES.join() !== COUNTER_NAMES.join()) {
      throw new Error('the native addon counts different counters than this build of weftd: rebuild it (npm run build:native)');
    }
    this.counterSlots = new BigUint64Array(queues.length * COUNTER_NAMES.length);
    this.table = initial;
    this.padLimit = cfg.mtu;
    this.wg = new EngineSessions(cfg, {
      sendHandshake: (ip, port, msg) => this.afterPublish(() => this.addon.engineWgSend(this.handle!, ip, port, msg)),
      keypairsChanged: () => {
        this.stale = true;
        this.queueFlush();
      },
      // The workers send what waited once the table with the session arrives; a keepalive confirms the session either way.
      sessionReady: (p) => this.afterPublish(() => this.keepalive(p)),
      sendKeepalive: (p) => this.afterPublish(() => this.keepalive(p)),
      // The workers drop what waited for it after Rekey-Attempt-Time.
      gaveUp: () => undefined,
      refreshActivity: () => this.refreshActivity(),
    });
  }

  async start(): Promise<void> {
    if (this.handle !== undefined || this.closed) throw new Error('engine already started or closed');
    const c = this.cfg;
    this.handle = this.addon.createEngine({
      tunFds: this.queues.map((q) => q.fd),
      vnetHdr: this.offloads.vnetHdr,
      udpGso: this.offloads.udpGso,
      udpGro: this.offloads.udpGro,
      bindIp: c.bindIp,
      bindDevice: c.bindDevice ?? '',
      port: c.port,
      vni: c.vni,
      selfBase: c.self.base,
      selfLen: c.self.len,
      tunAddr: c.tunAddr,
      counters: this.counterSlots,
      onWireguard: () => this.take(),
    });
    this.publish();
  }

  setRoutes(table: RouteTable): void {
    this.table = table;
    // Sessions of peers gone are retired with this table, after its peers are mapped to their sessions.
    this.wg.setTable(table);
    this.publish();
  }

  async enableWireguard(padLimit: number): Promise<void> {
    this.padLimit = padLimit;
    if (this.handle !== undefined && !this.wgOn) {
      try {
        this.addon.engineWgEnable(this.handle, this.cfg.wireguard.port);
      } catch (err) {
        throw wireguardPortError(this.cfg.wireguard.port, err);
      }
      this.wgOn = true;
    }
    this.publish();
  }

  setWireguardKey(privateKey: Uint8Array): void {
    this.wg.sessions.setPrivateKey(privateKey);
    this.publish();
  }

  wireguardPeers(): WireguardPeerStatus[] {
    return this.wg.sessions.status();
  }

  healthy(): boolean {
    return this.handle !== undefined && !this.closed && this.addon.engineInfo(this.handle).workersRunning === this.queues.length;
  }

  /** The queue count, the offloads the kernel let the engine use (after start), and replaced route tables not yet freed. */
  details(): EngineDetails {
    if (this.handle === undefined) return { queues: this.queues.length, vnetHdr: this.offloads.vnetHdr };
    const { udpGso, udpGro, retiredTables, boundToDevice } = this.addon.engineInfo(this.handle);
    return { queues: this.queues.length, vnetHdr: this.offloads.vnetHdr, udpGso, udpGro, boundToDevice, retiredTables };
  }

  counters(): CounterSnapshot {
    const n = COUNTER_NAMES.length;
    const sums = new Array<number>(n).fill(0);
    for (let i = 0; i < this.counterSlots.length; i++) sums[i % n]! += Number(this.counterSlots[i]);
    this.wg.addTo(sums);
    return snapshot(sums);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wg.sessions.close();
    if (this.handle !== undefined) this.addon.engineStop(this.handle);
    for (const q of this.queues) q.close();
  }

  /**
   * Hands the engine the table and, once encryption is on, the sessions:
   * keypairs new since the last table installed, those gone retired, and
   * each peer's next, current and previous keypair listed by index.
   */
  private publish(): void {
    if (this.handle === undefined || this.closed) return;
    this.stale = false;
    if (!this.wgOn) {
      this.addon.engineSetRoutes(this.handle, this.table.arrays());
      return;
    }
    const live = new Set<number>();
    for (const p of this.wg.sessions.allPeers()) {
      for (const kp of [p.next, p.current, p.previous]) {
        if (!kp) continue;
        live.add(kp.localIndex);
        if (!this.installed.has(kp.localIndex)) {
          this.addon.engineWgInstall(this.handle, kp.localIndex, kp.remoteIndex, kp.sendKey, kp.recvKey, kp.initiator, p.ip, p.port);
          this.installed.add(kp.localIndex);
        }
      }
    }
    for (const i of this.installed) {
      if (live.has(i)) continue;
      this.addon.engineWgRetire(this.handle, i);
      this.installed.delete(i);
    }
    const slots = new Uint32Array(this.table.peers.length * 3);
    this.table.peers.forEach((_, i) => {
      const sp = this.wg.of(i);
      slots[3 * i] = sp?.next?.localIndex ?? 0;
      slots[3 * i + 1] = sp?.current?.localIndex ?? 0;
      slots[3 * i + 2] = sp?.previous?.localIndex ?? 0;
    });
    this.addon.engineSetRoutes(this.handle, this.table.arrays(), { mac1Key: this.wg.sessions.mac1Key, padLimit: this.padLimit, slots });
  }

  /** Runs `send` at the end of this turn, after the keypairs changed in it are published. */
  private afterPublish(send: () => void): void {
    this.outbox.push(send);
    this.queueFlush();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    const sends = this.outbox.splice(0);
    if (this.handle === undefined || this.closed) return;
    if (this.stale) this.publish();
    for (const send of sends) send();
  }

  /** A keepalive on the keypair the workers send to `sp` on. */
  private keepalive(sp: SessionPeer): void {
    const kp = sendingKeypair(sp, this.cfg.clock.now());
    if (kp && this.handle !== undefined) this.addon.engineWgKeepalive(this.handle, kp.localIndex);
  }

  /**
   * The workers said handshake messages or session requests wait: takes a
   * batch for the sessions, and the rest on later turns of the event loop.
   */
  private take(): void {
    if (this.handle === undefined || this.closed || this.taking) return;
    this.taking = true;
    try {
      const { messages, wants } = this.addon.engineWgTake(this.handle, this.takeBuf, this.wantBuf);
      const batch: HandshakeMessage[] = [];
      for (let i = 0; i < messages; i++) {
        const at = i * WG_TAKE_ENTRY;
        batch.push({ srcIp: this.takeBuf.readUInt32LE(at), msg: Buffer.from(this.takeBuf.subarray(at + 6, at + 6 + this.takeBuf.readUInt16LE(at + 4))) });
      }
      if (batch.length > 0) this.wg.sessions.receive(batch);
      for (let i = 0; i < wants; i++) {
        const sp = this.wg.sessions.atIp(this.wantBuf[i]!);
        if (sp) this.wg.sessions.wantSession(sp);
      }
      // A full buffer of either may have left more: those flags stay raised without a new notification.
      if (messages === HANDSHAKES_PER_TURN || wants === this.wantBuf.length) setImmediate(() => this.take());
    } finally {
      this.taking = false;
    }
  }

  /** The workers' record of each keypair's use, into the sessions' Keypair objects (times on the sessions' clock). */
  private refreshActivity(): void {
    if (this.handle === undefined || this.installed.size === 0) return;
    if (this.activityBuf.length < this.installed.size * WG_ACTIVITY_ROW) this.activityBuf = new Float64Array(this.installed.size * 2 * WG_ACTIVITY_ROW);
    const n = this.addon.engineWgActivity(this.handle, this.activityBuf);
    const now = this.cfg.clock.now();
    const at = (ago: number): number => (ago < 0 ? -Infinity : now - ago);
    for (let r = 0; r < n; r++) {
      const row = this.activityBuf.subarray(r * WG_ACTIVITY_ROW, (r + 1) * WG_ACTIVITY_ROW);
      const kp: Keypair | undefined = this.wg.sessions.keypair(row[0]!);
      if (!kp) continue;
      kp.lastDataSent = at(row[1]!);
      kp.lastDataReceived = at(row[2]!);
      kp.lastSent = at(row[3]!);
      kp.lastReceived = at(row[4]!);
      kp.confirmed ||= row[5] === 1;
      kp.sendCounter = row[6]!;
    }
  }
}
