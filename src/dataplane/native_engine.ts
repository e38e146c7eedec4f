// The native engine's TypeScript side: validates and hands the C++ engine
// (native/dataplane.cc) its TUN queues, whole route tables, and memory for
// counters it reads without calling into native.

import { WeftError } from '../errors.js';
import { COUNTER_NAMES, type CounterSnapshot, snapshot } from './counters.js';
import type { Engine, EngineConfig, EngineDetails, WireguardPeerStatus } from './engine.js';
import { loadAddon, type NativeEngineHandle, type WeftAddon } from '../host/addon.js';
import type { TunDevice } from '../host/tun_port.js';
import type { RouteTable } from '../routes/route_table.js';

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
    });
    this.addon.engineSetRoutes(this.handle, this.table.arrays());
  }

  setRoutes(table: RouteTable): void {
    this.table = table;
    if (this.handle !== undefined && !this.closed) this.addon.engineSetRoutes(this.handle, table.arrays());
  }

  async enableWireguard(): Promise<void> {
    throw new WeftError('WEFT_HOST_SETUP', 'the native engine does not encrypt yet: run weftd --engine js for the encrypted modes', {});
  }

  setWireguardKey(): void {}

  wireguardPeers(): WireguardPeerStatus[] {
    return [];
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
    return snapshot(sums);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.handle !== undefined) this.addon.engineStop(this.handle);
    for (const q of this.queues) q.close();
  }
}
