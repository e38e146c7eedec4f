// A weft cluster in one process, with no root: N complete weftd control
// planes (Daemon: lease manager, keeper, watcher, lifecycle) with the js
// engine over in-memory TUNs and one in-memory underlay, against one
// in-memory registry, all on one manual clock. Pods' packets go in at a
// node's TUN and come out of another's (ping).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_LEASE_TTL_S, type EncryptionMode } from '../../src/constants.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { DaemonOptions } from '../../src/daemon/options.js';
import type { Dataplane, HostNetwork, Notifier } from '../../src/daemon/seams.js';
import { JsEngine } from '../../src/dataplane/js_engine.js';
import { WeftError } from '../../src/errors.js';
import { formatIp, parseCidr } from '../../src/net/ipv4.js';
import type { DaemonStatus } from '../../src/observe/status.js';
import { MemoryRegistry, MemoryStore } from '../../src/registry/memory_registry.js';
import { internetChecksum } from '../../src/wire/ipv4_packet.js';
import { ManualClock } from './manual_clock.js';
import { MemoryNetwork, MemoryTun } from './memory_dataplane.js';
import { icmpEcho } from './packets.js';
import { captureLogger, config } from './registry_fixture.js';
import { sleep, until } from './until.js';

export const CLUSTER_PREFIX = '/weft';
/** The underlay MTU of every in-memory node. */
const UNDERLAY_MTU = 1500;

/** What the in-memory host recorded of what a daemon did to it. */
export interface HostRecord {
  tunConfig: { dev: string; addr: string; mtu: number } | undefined;
  encapFilter: boolean;
  masquerade: boolean;
}

/** Instance locks held in this process, by state directory (one weftd per node, as the flock keeps it). */
const heldLocks = new Map<string, string>();

function memoryHost(ip: string, record: HostRecord): HostNetwork {
  return {
    lockInstance: (stateDir, nodeName) => {
      const holder = heldLocks.get(stateDir);
      if (holder !== undefined) throw new WeftError('WEFT_ALREADY_RUNNING', `another weftd already runs on this node (node ${holder})`, { path: stateDir });
      heldLocks.set(stateDir, nodeName);
      return { release: () => void heldLocks.delete(stateDir) };
    },
    underlay: async () => ({ ip, mtu: UNDERLAY_MTU }),
    ipForwarding: async () => true,
    installEncapFilter: async () => {
      record.encapFilter = true;
      return { backend: 'memory', remove: async () => void (record.encapFilter = false) };
    },
    installMasquerade: async () => {
      record.masquerade = true;
      return { backend: 'memory', remove: async () => void (record.masquerade = false) };
    },
  };
}

/** Each open() gives `node` a fresh TUN, as the kernel gives a weftd that opens its device again. */
function memoryDataplane(net: MemoryNetwork, node: ClusterNode): Dataplane {
  return {
    open: () => {
      const tun = new MemoryTun();
      node.tun = tun;
      return {
        tunName: tun.name,
        configure: async (c) => {
          const address = `${formatIp(c.subnet.base)}/${c.network.len}`;
          node.host.tunConfig = { dev: tun.name, addr: address, mtu: c.mtu };
          return { kind: 'tun', name: tun.name, mtu: c.mtu, address };
        },
        setMtu: async (mtu) => {
          if (node.host.tunConfig) node.host.tunConfig = { ...node.host.tunConfig, mtu };
        },
        createEngine: (cfg, initial) => new JsEngine(cfg, tun, net.transport(formatIp(cfg.bindIp), cfg.port), initial, (port) => net.transport(formatIp(cfg.bindIp), port)),
        close: () => tun.close(),
      };
    },
  };
}

/** What systemd would have been told: each sd_notify's fields, in order. */
function memoryNotifier(notes: Record<string, string | number>[]): Notifier {
  return { watchdogIntervalMs: undefined, notify: (fields) => void notes.push(fields) };
}

/** One node: a machine (its address, state directory, TUN) that runs one daemon at a time. */
export class ClusterNode {
  daemon: Daemon | undefined;
  /** The TUN the daemon opened last. */
  tun = new MemoryTun();
  /** The daemon's notifications to its service manager. */
  notes: Record<string, string | number>[] = [];
  readonly host: HostRecord = { tunConfig: undefined, encapFilter: false, masquerade: false };
  readonly registry: MemoryRegistry;
  /** How the last run ended: undefined while running (or never ran), null on a clean stop, else the error. */
  ended: Error | null | undefined;
  log: Logger;
  records: Record<string, unknown>[];

  constructor(
    private readonly cluster: MemoryCluster,
    readonly name: string,
    readonly ip: string,
    readonly stateDir: string,
    private readonly overrides: Partial<DaemonOptions>,
  ) {
    this.registry = new MemoryRegistry(cluster.store, CLUSTER_PREFIX);
    ({ log: this.log, records: this.records } = captureLogger());
  }

  options(): DaemonOptions {
    return {
      etcdEndpoints: ['memory'],
      etcdPrefix: CLUSTER_PREFIX,
      nodeName: this.name,
      publicIp: this.ip,
      iface: undefined,
      engine: 'js',
      queues: 1,
      offload: false,
      udpGso: false,
      udpGro: false,
      tunName: 'weft0',
      mtu: undefined,
      subnetFile: join(this.stateDir, 'subnet.env'),
      stateDir: this.stateDir,
      leaseTtlS: DEFAULT_LEASE_TTL_S,
      resyncIntervalS: 300,
      statsIntervalS: 0,
      metricsAddr: null,
      etcdGraceS: 300,
      ipMasq: false,
      releaseOnExit: false,
      podEncapFilter: true,
      logLevel: 'debug',
      ...this.overrides,
    };
  }

  /** Starts a daemon on this machine and waits until it forwards, waits for a subnet, or ends. */
  async start(): Promise<void> {
    if (this.daemon && this.ended === undefined) throw new Error(`${this.name} already runs`);
    ({ log: this.log, records: this.records } = captureLogger());
    this.notes = [];
    const daemon = new Daemon(this.options(), this.log, {
      registry: this.registry,
      clock: this.cluster.clock,
      host: memoryHost(this.ip, this.host),
      dataplane: memoryDataplane(this.cluster.net, this),
      notifier: memoryNotifier(this.notes),
    });
    this.daemon = daemon;
    this.ended = undefined;
    daemon.run().then(
      () => (this.ended = null),
      (err: Error) => (this.ended = err),
    );
    await this.cluster.until(`${this.name} running`, () => this.ended !== undefined || ['running', 'waiting'].includes(daemon.status().state));
  }

  /** Stops the daemon as SIGTERM does, and waits for its teardown. */
  async stop(): Promise<void> {
    this.daemon?.stop('test');
    await this.cluster.until(`${this.name} stopped`, () => this.ended !== undefined);
  }

  status(): DaemonStatus {
    if (!this.daemon) throw new Error(`${this.name} never started`);
    return this.daemon.status();
  }

  events(name: string): Record<string, unknown>[] {
    return this.records.filter((r) => r.event === name);
  }
}

export class MemoryCluster {
  readonly clock = new ManualClock();
  readonly store = new MemoryStore(this.clock);
  readonly net = new MemoryNetwork();
  readonly nodes: ClusterNode[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'weft-cluster-'));
  /** A client for the test's own reads and writes. */
  readonly admin = new MemoryRegistry(this.store, CLUSTER_PREFIX);

  /** Writes the network config, as `weftctl init` does. */
  async init(network = '198.19.0.0/16', subnetLen = 24, encryption: EncryptionMode = 'off'): Promise<void> {
    await this.admin.putConfig({ ...config(network, subnetLen), encryption }, false);
  }

  /** Writes the config (`network`, `encryption`), starts nodes n1..n<n> with `overrides`, and waits until each routes to all the others. */
  async startAll(n: number, { network, encryption, ...overrides }: Partial<DaemonOptions> & { network?: string; encryption?: EncryptionMode } = {}): Promise<ClusterNode[]> {
    await this.init(network, undefined, encryption);
    const nodes = Array.from({ length: n }, (_, i) => this.add(`n${i + 1}`, i, overrides));
    await Promise.all(nodes.map((x) => x.start()));
    await this.until('every table complete', () => nodes.every((x) => x.status().peers.length === n - 1));
    return nodes;
  }

  /** A machine named `name` at underlay address 198.18.0.<n>, not yet running weftd. */
  add(name: string, n: number, overrides: Partial<DaemonOptions> = {}): ClusterNode {
    const ip = `198.18.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    // Each machine has its own state directory, even under a name another machine has.
    const node = new ClusterNode(this, name, ip, join(this.dir, `${name}@${ip}`), overrides);
    this.nodes.push(node);
    return node;
  }

  /**
   * Waits until `done()` holds, letting simulated time move in small steps
   * (a contended lease backs off on the clock) and real I/O (the state and
   * subnet files) complete between them; fails naming `what`.
   */
  async until(what: string, done: () => boolean, maxSimulatedMs = 60_000): Promise<void> {
    for (let t = 0; !done(); t += 10) {
      if (t > maxSimulatedMs) throw new Error(`${what}: not after ${maxSimulatedMs} ms of simulated time`);
      await this.clock.advance(10);
      await sleep(1);
    }
  }

  /** Lets simulated time pass, and the real I/O started meanwhile finish. */
  async elapse(ms: number): Promise<void> {
    await this.clock.advance(ms);
    await sleep(5);
  }

  async close(): Promise<void> {
    for (const n of this.nodes) if (n.daemon && n.ended === undefined) await n.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A pod address on `node`'s subnet (.2, as the CNI plugin gives the first pod). */
export function podIp(node: ClusterNode): string {
  const subnet = node.status().subnet;
  if (!subnet) throw new Error(`${node.name} holds no subnet`);
  return formatIp(parseCidr(subnet).base + 2);
}

export interface PingOptions {
  /** ICMP payload bytes (at least 4). */
  size?: number;
  /** How long the ping may take to come out, in real ms. */
  waitMs?: number;
}

/**
 * Sends a ping of `size` payload bytes (the first four "weft", to look for on
 * the underlay) from a pod on `from` to a pod on `to`; resolves once it came
 * out of `to`'s TUN unchanged, and throws if it did not within `waitMs` real ms.
 */
export async function ping(from: ClusterNode, to: ClusterNode, { size = 32, waitMs = 2000 }: PingOptions = {}): Promise<void> {
  const packet = icmpEcho(podIp(from), podIp(to), size);
  packet.write('weft', 28);
  packet.writeUInt16BE(0, 22);
  packet.writeUInt16BE(internetChecksum(packet, 20, packet.length - 20), 22);
  const before = to.tun.written.length;
  from.tun.inject([packet]);
  await until(`a ping ${from.name} -> ${to.name}`, () => to.tun.written.slice(before).some((p) => p.equals(packet)), waitMs, 2);
}

/** Whether a ping (as ping() sends it) came through: for tests that count what is lost. */
export function pinged(from: ClusterNode, to: ClusterNode, options: PingOptions = {}): Promise<boolean> {
  return ping(from, to, options).then(
    () => true,
    () => false,
  );
}
