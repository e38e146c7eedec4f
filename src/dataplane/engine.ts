// The engine interface: what the control plane asks of a dataplane. Whole
// route tables go in, counters come out; packets never cross it.

import type { Clock } from '../clock.js';
import type { Cidr } from '../net/ipv4.js';
import type { RouteTable } from '../routes/route_table.js';
import type { WireguardPeerStatus } from '../wireguard/sessions.js';
import type { CounterSnapshot } from './counters.js';

export type { WireguardPeerStatus };

export type EngineKind = 'js' | 'native' | 'kernel';
export const ENGINE_KINDS: readonly EngineKind[] = ['native', 'js', 'kernel'];

/** What an engine forwards for: fixed for its lifetime. */
export interface EngineConfig {
  /** This node's subnet: the only inner destinations accepted from outside. */
  readonly self: Cidr;
  /** Address of the TUN device (source of ICMP errors weft originates). */
  readonly tunAddr: number;
  readonly vni: number;
  /** UDP port this node listens on, and the default port of peers. */
  readonly port: number;
  /** Underlay address to bind; 0 binds all. */
  readonly bindIp: number;
  /**
   * The underlay interface: the native engine binds its sending sockets to
   * it, so no encapsulated packet can be routed into the TUN; undefined when
   * weftd does not know it. The js engine (Node's dgram) cannot bind to one.
   */
  readonly bindDevice?: string;
  /** The largest inner packet the TUN may carry in any mode (its MTU without encryption). */
  readonly mtu: number;
  /** The node's WireGuard private key and port (used once enableWireguard() opened the port). */
  readonly wireguard: { readonly privateKey: Uint8Array; readonly port: number };
  /** What the WireGuard timers run on. */
  readonly clock: Clock;
}

/** What an engine runs with, for logs, /status and `weftctl status`. */
export interface EngineDetails {
  /** TUN queues, one per worker (the js engine has one; the kernel engine none). */
  readonly queues?: number;
  /** Native: the TUN carries vnet headers (TSO in, coalesced super-packets out). */
  readonly vnetHdr?: boolean;
  /** Native, after start: the kernel took UDP GSO / UDP GRO. */
  readonly udpGso?: boolean;
  readonly udpGro?: boolean;
  /** Native, after start: the sending sockets are bound to the underlay interface. */
  readonly boundToDevice?: boolean;
  /** Native, after start: replaced route tables not yet freed (some worker may still read them). */
  readonly retiredTables?: number;
  /** Kernel: the VXLAN-GPE device, and whether the kernel filters VNIs on it (vnifilter, 5.18+). */
  readonly device?: string;
  readonly vnifilter?: boolean;
  /** Kernel, after start: what holds weft's filters (nftables, iptables). */
  readonly firewall?: string;
  /** Kernel, after start: encap routes installed; peers not routed (a lease on another port: the device sends to one); device repairs (deleted or set down under weftd). */
  readonly routes?: number;
  readonly unroutablePeers?: number;
  readonly deviceRepairs?: number;
  /** Kernel, after start: the device's own error and drop counts; its packets and bytes are the inside (tx) and outside (rx) counters. */
  readonly deviceRxErrors?: number;
  readonly deviceRxDropped?: number;
  readonly deviceTxErrors?: number;
  readonly deviceTxDropped?: number;
}

/**
 * Lifecycle: created -> start() -> running -> close() -> closed. setRoutes()
 * may be called in any state before close(); the latest table wins and
 * applies to the next packet. counters() never blocks the dataplane.
 */
export interface Engine {
  readonly kind: EngineKind;
  start(): Promise<void>;
  setRoutes(table: RouteTable): void;
  counters(): CounterSnapshot;
  /** True while the engine forwards: started, not closed, no worker gone. */
  healthy(): boolean;
  /** What the engine runs with, for logs and status (after start). */
  details(): EngineDetails;
  /**
   * Opens the WireGuard port (once; later calls only update `padLimit`,
   * the TUN's MTU, which transport padding never exceeds). Until then no
   * peer is spoken to in WireGuard. Rejects, naming the port, when it
   * cannot be bound.
   */
  enableWireguard(padLimit: number): Promise<void>;
  /** The node's WireGuard key rotated: new handshakes use it; sessions in use stay. */
  setWireguardKey(privateKey: Uint8Array): void;
  /** Every peer that publishes a key, with its session's state. */
  wireguardPeers(): WireguardPeerStatus[];
  close(): Promise<void>;
}
