// What the daemon is assembled from: the registry, the clock, the host's
// network stack, the dataplane's devices, the service manager. weftd's entry
// wires the real ones (kernel_seams.ts); tests wire in-memory twins.

import type { Clock } from '../clock.js';
import type { Engine, EngineConfig } from '../dataplane/engine.js';
import type { WeftError } from '../errors.js';
import type { Cidr } from '../net/ipv4.js';
import type { HostStatus } from '../observe/status.js';
import type { Registry } from '../registry/registry.js';
import type { RouteTable } from '../routes/route_table.js';

/** The underlay this node is reached at. */
export interface Underlay {
  readonly ip: string;
  /** Its MTU: the TUN's is this less the encapsulation overhead, unless --mtu says. */
  readonly mtu: number;
  /** The interface holding it, when known: the native engine binds its sending sockets to it. */
  readonly iface?: string;
}

/** Something installed on the host, and how to take it out again. */
export interface Installed {
  /** Which mechanism holds it (nftables, iptables), for logs. */
  readonly backend: string;
  remove(): Promise<void>;
}

/** The host's network stack, as the daemon changes it: each call at control-plane rate, each failure a WeftError naming what. */
export interface HostNetwork {
  /**
   * One weftd per node: held until released (or the process dies);
   * WEFT_ALREADY_RUNNING naming the holder. `problem`: the lock is held, but
   * its file could not be written (a full disk), naming the path.
   */
  lockInstance(stateDir: string, nodeName: string): { release(): void; readonly problem?: WeftError };
  /** The underlay from --public-ip / --iface / --mtu, else the default-route interface; WEFT_NO_PUBLIC_IP when there is none. */
  underlay(o: { readonly publicIp?: string; readonly iface?: string; readonly mtu?: number }): Promise<Underlay>;
  /** Whether the kernel forwards IPv4; undefined when it cannot tell. */
  ipForwarding(): Promise<boolean | undefined>;
  /** Drops UDP to `port` from pod addresses in `network`. */
  installEncapFilter(network: Cidr, port: number): Promise<Installed>;
  /** Masquerades pod traffic from `subnet` leaving `network`. */
  installMasquerade(network: Cidr, subnet: Cidr): Promise<Installed>;
}

/** What a dataplane device is configured for. */
export interface DeviceConfig {
  readonly network: Cidr;
  /** This node's subnet: the device gets its network address. */
  readonly subnet: Cidr;
  readonly mtu: number;
  /** The cluster's UDP port and VNI. */
  readonly port: number;
  readonly vni: number;
  readonly underlay: Underlay;
}

/** A device as configured, for /status (what `weftctl check` compares the host with). */
export type ConfiguredDevice = NonNullable<HostStatus['device']>;

/** The device an engine runs on: a TUN, or the kernel engine's VXLAN-GPE device. */
export interface DataplaneDevice {
  /** The device's name (the kernel may have chosen it). */
  readonly tunName: string;
  /**
   * Gives the device this node's address and the MTU, so that the kernel
   * routes the cluster network into it, and brings it up; the kernel
   * engine's device is created here. Its refusals (the engine cannot run
   * on this node) are WEFT_ENGINE_REFUSED. Returns what it configured.
   */
  configure(c: DeviceConfig): Promise<ConfiguredDevice>;
  /** Changes the device's MTU while it runs (encryption turned on or off). */
  setMtu(mtu: number): Promise<void>;
  /** The engine over this device (and the underlay's UDP); called once, after configure(). */
  createEngine(cfg: EngineConfig, initial: RouteTable): Engine;
  /** Closes the device, which removes it and its routes. */
  close(): void;
}

/** Opens the device the configured engine runs on. */
export interface Dataplane {
  open(): DataplaneDevice;
}

/** The service manager's notifications (systemd's sd_notify). */
export interface Notifier {
  /** How often to send WATCHDOG=1, when a watchdog is asked for. */
  readonly watchdogIntervalMs: number | undefined;
  notify(fields: Record<string, string | number>): void;
}

export interface DaemonSeams {
  /** The store of leases and config (etcd, in weftd); the caller closes it after run(). */
  readonly registry: Registry;
  /** What every timer and deadline of the daemon runs on. */
  readonly clock: Clock;
  readonly host: HostNetwork;
  readonly dataplane: Dataplane;
  /** Undefined when no service manager listens. */
  readonly notifier: Notifier | undefined;
}
