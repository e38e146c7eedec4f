// The kernel engine: Linux's own VXLAN-GPE device forwards, weft's control
// plane programs it. No packet enters userspace:
//
//   pod -> cni0 -> route <peer subnet> encap ip id <vni> dst <peer> csum dev weft0 -> UDP <port>
//   UDP <port> -> weft's filter (header, sender) -> weft0 -> filter (inner source, destination) -> cni0 -> pod
//
// Whole tables come in (setRoutes) and become a diff of encap routes and
// the filter's node set; counters are the device's own statistics and the
// filter's. Every second (on cfg.clock) the device is checked and repaired
// when it was deleted or set down, and the filter's iptables counters are
// read again, so no scrape waits for a command. The device itself is
// configured before the engine is made (kernel_seams.ts); the engine removes
// its filter on close.

import type { Logger } from 'pino';
import type { Timer } from '../clock.js';
import { WeftError, errorMessage } from '../errors.js';
import { EncapRoutes, type EncapTarget } from '../host/encap_routes.js';
import { KERNEL_FILTER_COUNTERS, KERNEL_NFT_TABLE, KernelFilter } from '../host/kernel_filter.js';
import type { RtLink } from '../host/rtnetlink.js';
import type { VxlanDevice } from '../host/vxlan_device.js';
import { formatCidr, formatIp } from '../net/ipv4.js';
import type { RouteTable } from '../routes/route_table.js';
import { C, COUNTER_NAMES, type CounterName, type CounterSnapshot, snapshot } from './counters.js';
import type { Engine, EngineConfig, EngineDetails, WireguardPeerStatus } from './engine.js';

/** Every filter counter stands for an engine counter of the same name (a typo fails the build). */
const FILTER_COUNTERS: readonly CounterName[] = KERNEL_FILTER_COUNTERS;
const CHECK_INTERVAL_MS = 1000;

/**
 * Counters that only grow, over sources that start again from zero (the
 * device made afresh, the filter reinstalled): a value below the last one
 * read is a restart, and what was counted before is kept.
 */
export class MonotonicCounters {
  private readonly last: number[];
  private readonly base: number[];

  constructor(n: number) {
    this.last = new Array<number>(n).fill(0);
    this.base = new Array<number>(n).fill(0);
  }

  read(raw: readonly number[]): number[] {
    return raw.map((v, i) => {
      if (v < this.last[i]!) this.base[i]! += this.last[i]!;
      this.last[i] = v;
      return this.base[i]! + v;
    });
  }
}

export interface KernelEngineParts {
  /** Created and configured for this node already. */
  readonly device: VxlanDevice;
  readonly log: Logger;
  /** How often the device is checked and repaired. */
  readonly checkIntervalMs?: number;
}

/**
 * Lifecycle as Engine says. Until its first table from setRoutes the engine
 * keeps the routes an earlier weftd left (they go on forwarding through a
 * restart after a crash) and adds the initial table's; from then on every
 * table is applied exactly, what it lacks deleted.
 */
export class KernelEngine implements Engine {
  readonly kind = 'kernel' as const;
  private readonly device: VxlanDevice;
  private readonly log: Logger;
  private readonly checkIntervalMs: number;
  private readonly routes: EncapRoutes;
  private readonly counted = new MonotonicCounters(COUNTER_NAMES.length);
  private filter: KernelFilter | undefined;
  private table: RouteTable;
  private exact = false;
  private started = false;
  private closed = false;
  private timer: Timer | undefined;
  private repairs = 0;
  /** Subnets of peers on another port, and routes the kernel refused, by subnet, with why: logged once each. */
  private readonly unroutable = new Map<string, string>();
  private readonly refusedRoutes = new Map<string, string>();
  private lastProblem: string | undefined;

  constructor(
    private readonly cfg: EngineConfig,
    parts: KernelEngineParts,
    initial: RouteTable,
  ) {
    this.device = parts.device;
    this.log = parts.log;
    this.table = initial;
    this.routes = new EncapRoutes({ protocol: parts.device.protocol, subnetLen: initial.subnetLen, network: initial.network });
    this.checkIntervalMs = parts.checkIntervalMs ?? CHECK_INTERVAL_MS;
  }

  async start(): Promise<void> {
    if (this.started || this.closed) throw new Error('engine already started or closed');
    const link = this.device.link();
    if (!link) throw new WeftError('WEFT_HOST_SETUP', `the kernel engine's device ${this.device.name} is gone before the engine started`, { device: this.device.name });
    this.routes.adopt(link.index);
    if (this.routes.routes.size > 0) this.log.info({ event: 'kernel_routes_adopted', routes: this.routes.routes.size }, `kept ${this.routes.routes.size} encap routes an earlier weftd left, until the first lease listing`);
    const c = this.cfg;
    this.filter = await KernelFilter.install({ device: this.device.name, port: c.port, vni: c.vni, network: this.table.network, subnet: c.self }, this.nodes());
    this.started = true;
    this.program(link);
    this.timer = c.clock.setInterval(() => this.check(), this.checkIntervalMs);
    this.timer.unref();
  }

  setRoutes(table: RouteTable): void {
    this.table = table;
    if (!this.started || this.closed) return;
    this.exact = true;
    const link = this.device.link();
    // Gone or down: the next check repairs it and writes this table.
    if (link?.up) this.program(link);
  }

  /** The routes and the node set for the current table. */
  private program(link: RtLink): void {
    const want = new Map<number, EncapTarget>();
    const wrongPort = new Map<string, string>();
    for (const p of this.table.peers) {
      if (p.port !== this.cfg.port) wrongPort.set(formatCidr(p.subnet), `node ${p.node} (${formatIp(p.ip)}) listens on port ${p.port}; the kernel's device sends to its own port ${this.cfg.port} only`);
      else want.set(p.subnet.base, { remote: p.ip, vni: this.cfg.vni });
    }
    noteNew(this.unroutable, wrongPort, (subnet, why) => this.log.error({ event: 'kernel_peer_unroutable', subnet, err: why }, `not routing ${subnet}: ${why}`));
    const failures = this.routes.apply(want, link.index, this.exact);
    const failed = new Map(failures.map((f) => [f.subnet, `route to ${f.remote}: ${f.error}`]));
    noteNew(this.refusedRoutes, failed, (subnet, why) => this.log.error({ event: 'kernel_route_failed', subnet, err: why }, `the kernel refused the ${why} for ${subnet}; retried with the next table`));
    this.filter?.setNodes(this.nodes()).then(
      () => {
        if (this.filter?.failure) this.log.error({ event: 'kernel_filter_failed', err: this.filter.failure }, `updating the filter's node set failed: ${this.filter.failure}`);
      },
      () => undefined,
    );
  }

  /** The addresses UDP to the port is accepted from: the table's nodes, and until the first table those of the routes kept. */
  private nodes(): number[] {
    const ips = new Set(this.table.peers.map((p) => p.ip));
    if (!this.exact) for (const t of this.routes.routes.values()) ips.add(t.remote);
    return [...ips].sort((a, b) => a - b);
  }

  /** Every second: the device is there and up, else repaired; the filter is there, else installed again; its iptables counters read again. */
  private check(): void {
    if (this.closed) return;
    void this.filter?.refreshCounters();
    try {
      const link = this.device.link();
      if (!link?.up) this.repair(link ? 'set down' : 'deleted');
      if (this.filter?.backend === 'nftables' && this.filter.counters() === undefined) {
        this.log.warn({ event: 'kernel_filter_reinstalled' }, `nftables table ip ${KERNEL_NFT_TABLE} vanished (a flushed ruleset?): installing it again`);
        this.filter.reinstall(this.nodes()).catch((err: unknown) => this.problem(`reinstalling the filter: ${errorMessage(err)}`));
      }
      this.lastProblem = undefined;
    } catch (err) {
      this.problem(errorMessage(err));
    }
  }

  private repair(why: string): void {
    const { adopted, link } = this.device.repair();
    this.repairs++;
    const failures = this.routes.rewrite(link.index);
    this.program(link);
    this.log.warn(
      { event: 'kernel_device_repaired', device: this.device.name, why, recreated: !adopted, routes: this.routes.routes.size, failed_routes: failures.length },
      `${this.device.name} was ${why} under weftd: ${adopted ? 'brought up again' : 'made afresh'} with ${this.routes.routes.size} routes`,
    );
  }

  /** Logs a problem of the checks once, until they pass again. */
  private problem(why: string): void {
    if (why === this.lastProblem) return;
    this.lastProblem = why;
    this.log.error({ event: 'kernel_device_repair_failed', err: why }, `cannot repair the kernel engine's device: ${why}; retrying every ${this.checkIntervalMs / 1000} s`);
  }

  counters(): CounterSnapshot {
    const raw = new Array<number>(COUNTER_NAMES.length).fill(0);
    const stats = this.started && !this.closed ? this.device.link()?.stats : undefined;
    if (stats) {
      raw[C.inside_packets] = stats.txPackets;
      raw[C.inside_bytes] = stats.txBytes;
      raw[C.outside_packets] = stats.rxPackets;
      raw[C.outside_bytes] = stats.rxBytes;
    }
    const filtered = this.filter?.counters();
    for (const n of FILTER_COUNTERS) raw[C[n]] = filtered?.get(n) ?? 0;
    return snapshot(this.counted.read(raw));
  }

  /** Started, not closed, and the device is there and up. */
  healthy(): boolean {
    if (!this.started || this.closed) return false;
    try {
      return this.device.link()?.up === true;
    } catch {
      return false;
    }
  }

  details(): EngineDetails {
    const base = { device: this.device.name, vnifilter: this.device.vnifilter };
    if (!this.started) return base;
    const stats = this.device.link()?.stats;
    return {
      ...base,
      firewall: this.filter?.backend ?? 'none',
      routes: this.routes.routes.size,
      unroutablePeers: this.unroutable.size,
      deviceRepairs: this.repairs,
      ...(stats ? { deviceRxErrors: stats.rxErrors, deviceRxDropped: stats.rxDropped, deviceTxErrors: stats.txErrors, deviceTxDropped: stats.txDropped } : {}),
    };
  }

  /** Linux's VXLAN-GPE device has no WireGuard (weftd refuses the kernel engine while the cluster encrypts). */
  enableWireguard(): Promise<void> {
    return Promise.reject(new WeftError('WEFT_ENGINE_REFUSED', '--engine kernel cannot encrypt: run --engine native (or js)'));
  }

  setWireguardKey(): void {}

  wireguardPeers(): WireguardPeerStatus[] {
    return [];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cfg.clock.clearTimeout(this.timer);
    await this.filter?.remove();
  }
}

/** Makes `known` equal `now`, calling `log` for each entry new to it (or with a new reason). */
function noteNew(known: Map<string, string>, now: ReadonlyMap<string, string>, log: (key: string, why: string) => void): void {
  for (const [k, why] of now) if (known.get(k) !== why) log(k, why);
  known.clear();
  for (const [k, why] of now) known.set(k, why);
}
