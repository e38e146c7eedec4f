// weftd's lifecycle: set up in order (config, lease, TUN, engine, watch,
// renewals, subnet file), run until a signal or a fatal error, tear down in
// reverse. The lease is kept on exit, so a restart gets the same subnet.
//
//   starting --(all set up)--> running --(signal | fatal)--> stopping --> stopped

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { ENCAP_OVERHEAD, NATIVE_MAX_TSO_SEGMENTS } from '../constants.js';
import { JsEngine } from '../dataplane/js_engine.js';
import { NativeEngine } from '../dataplane/native_engine.js';
import type { Engine } from '../dataplane/engine.js';
import { WeftError, errorMessage } from '../errors.js';
import { DgramUdp } from '../host/dgram_udp.js';
import { configureTun, defaultRouteInterface, interfaceInfo, interfaceWithAddress } from '../host/netconf.js';
import { installEncapFilter, removeEncapFilter } from '../host/encap_filter.js';
import { InstanceLock } from '../host/instance_lock.js';
import { installMasquerade, ipForwarding, removeMasquerade } from '../host/masquerade.js';
import { writeSubnetEnv } from '../host/subnet_env.js';
import { TUN_MULTI_QUEUE, TUN_VNET_HDR } from '../host/addon.js';
import { SystemdNotifier } from '../host/systemd.js';
import { KernelTun } from '../host/tun.js';
import { contains, formatCidr, formatIp, parseIp, underlayAddressProblem } from '../net/ipv4.js';
import { formatListenAddr } from '../net/listen_addr.js';
import { ObserveServer } from '../observe/http_server.js';
import type { DaemonState, DaemonStatus, StatusSource } from '../observe/status.js';
import { configKey } from '../registry/keys.js';
import { LeaseKeeper } from '../registry/lease_keeper.js';
import { LeaseManager } from '../registry/lease_manager.js';
import { LeaseWatcher } from '../registry/lease_watcher.js';
import type { Registry } from '../registry/registry.js';
import type { NetworkConfig } from '../registry/schema.js';
import { RouteTable } from '../routes/route_table.js';
import { VERSION } from '../version.js';
import type { DaemonOptions } from './options.js';
import { retryWhileEtcdDown } from './retry.js';

/** How often weftd checks that etcd answers. */
const ETCD_PROBE_MS = 5000;

/** Teardown steps, pushed as setup proceeds and run in reverse. */
type Undo = { readonly what: string; readonly run: () => Promise<void> | void };

/** What the daemon is assembled from; the caller made each one and closes it after run(). */
export interface DaemonSeams {
  /** The store of leases and config (etcd, in weftd). */
  readonly registry: Registry;
  /** What every timer and deadline of the daemon runs on. */
  readonly clock: Clock;
}

export class Daemon implements StatusSource {
  private readonly undo: Undo[] = [];
  private readonly stopController = new AbortController();
  private fatal: WeftError | undefined;
  private stopping: Promise<void> | undefined;
  private lastStats = '';
  /** This process's id in its lease, telling it apart from a clone under the same node name. */
  private readonly instance = randomBytes(6).toString('hex');
  private state: DaemonState = 'starting';
  /** What setUp built, kept for status(); fields fill in as setup proceeds. */
  private parts: {
    registry?: Registry;
    config?: NetworkConfig;
    publicIp?: string;
    engine?: Engine;
    keeper?: LeaseKeeper;
    watcher?: LeaseWatcher;
  } = {};

  constructor(
    private readonly opts: DaemonOptions,
    private readonly log: Logger,
    private readonly seams: DaemonSeams,
  ) {}

  /** Resolves when the daemon has stopped; rejects with the error that stopped it, if any. */
  async run(): Promise<void> {
    try {
      await this.setUp();
    } catch (err) {
      await this.tearDown();
      if (this.stopController.signal.aborted && !this.fatal) return;
      throw err;
    }
    const signal = this.stopController.signal;
    if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await this.tearDown();
    if (this.fatal) throw this.fatal;
  }

  status(): DaemonStatus {
    const { registry, config, publicIp, engine, keeper, watcher } = this.parts;
    const lastContact = registry?.lastContactMs;
    const reasons: string[] = [];
    let readiness: DaemonStatus['readiness']['status'] = 'ready';
    if (this.state !== 'running' || !keeper || !engine) {
      readiness = 'not_ready';
      reasons.push(this.state === 'stopping' ? 'stopping' : 'starting: no lease or dataplane yet');
      if (this.state === 'starting' && registry && !registry.reachable) reasons.push(`waiting for etcd ${this.opts.etcdEndpoints.join(',')}: ${lastContact === undefined ? 'it has not answered yet' : 'it stopped answering'}`);
    } else if (!engine.healthy()) {
      readiness = 'not_ready';
      reasons.push('the dataplane stopped forwarding');
    } else if (registry && !registry.reachable) {
      const downS = lastContact === undefined ? Infinity : (this.seams.clock.now() - lastContact) / 1000;
      readiness = downS <= this.opts.etcdGraceS ? 'degraded' : 'not_ready';
      reasons.push(`etcd unreachable for ${Number.isFinite(downS) ? Math.round(downS) : '?'} s (grace ${this.opts.etcdGraceS} s); forwarding with the last table`);
    } else if (watcher?.resyncFailure) {
      readiness = 'degraded';
      reasons.push(`re-listing the leases fails (${watcher.resyncFailure}); forwarding with the last table`);
    }
    return {
      node: this.opts.nodeName,
      version: VERSION,
      state: this.state,
      engine: { kind: this.opts.engine, details: engine?.details() ?? {} },
      network: config ? formatCidr(config.network) : null,
      subnet: keeper ? formatCidr(keeper.record.subnet) : null,
      publicIp: publicIp ?? null,
      leaseExpiresInS: keeper ? keeper.secondsLeft() : null,
      etcd: { endpoints: this.opts.etcdEndpoints, connected: registry?.reachable ?? false, lastContactAgoS: lastContact === undefined ? null : Math.round((this.seams.clock.now() - lastContact) / 1000) },
      renewals: keeper?.renewals ?? 0,
      reacquisitions: keeper?.reacquisitions ?? 0,
      watchResyncs: watcher?.resyncs ?? 0,
      ignoredLeases: watcher?.ignored ?? 0,
      peers: (watcher?.peers() ?? []).map((p) => ({ subnet: formatCidr(p.subnet), node: p.node, publicIp: formatIp(p.ip), port: p.port })),
      counters: engine ? engine.counters() : null,
      readiness: { status: readiness, reasons },
    };
  }

  /** Asks the daemon to stop (signal handlers call this); idempotent. */
  stop(reason: string): void {
    if (this.stopController.signal.aborted) return;
    this.log.info({ event: 'shutdown', reason }, 'shutting down');
    this.state = 'stopping';
    this.stopController.abort(new Error(`stopped: ${reason}`));
  }

  private fail(err: WeftError): void {
    if (this.stopController.signal.aborted) return;
    this.fatal = err;
    this.state = 'stopping';
    this.log.error({ event: 'fatal', code: err.code, err: err.message }, err.message);
    this.stopController.abort(err);
  }

  private async setUp(): Promise<void> {
    const o = this.opts;
    const { registry, clock } = this.seams;
    const signal = this.stopController.signal;
    // First, so /healthz answers and /readyz says why while we wait for etcd.
    if (o.metricsAddr) {
      const http = await ObserveServer.start(this, o.metricsAddr, (err) => this.log.warn({ event: 'metrics_server_error', err: err.message }, 'metrics server error'));
      this.undo.push({ what: 'metrics server', run: () => http.close() });
      this.log.info({ event: 'metrics_listening', addr: formatListenAddr(http.address) }, `serving /metrics, /healthz, /readyz, /status on ${formatListenAddr(http.address)}`);
    }
    this.parts.registry = registry;

    const config = await retryWhileEtcdDown('read network config', () => registry.getConfig(), this.log, signal, clock);
    if (!config) {
      throw new WeftError('WEFT_CONFIG_MISSING', `no network config at ${configKey(o.etcdPrefix)} in etcd ${o.etcdEndpoints.join(',')}; run: weftctl init --network 10.244.0.0/16`, {
        key: configKey(o.etcdPrefix),
      });
    }
    this.parts.config = config;
    this.log.info({ event: 'config', network: formatCidr(config.network), subnet_len: config.subnetLen, vni: config.vni, port: config.port }, 'network config read');

    // Before anything a second daemon on this node would fight over: the lease, the TUN, the port.
    const lock = InstanceLock.acquire(o.stateDir, o.nodeName);
    this.undo.push({ what: 'instance lock', run: () => lock.release() });

    const underlay = await this.underlay();
    const problem = underlayAddressProblem(parseIp(underlay.ip)) ?? (contains(config.network, parseIp(underlay.ip)) ? `is inside the cluster network ${formatCidr(config.network)}` : undefined);
    if (problem) {
      throw new WeftError('WEFT_NO_PUBLIC_IP', `the underlay address ${underlay.ip} ${problem}: give --public-ip (or --iface) an address other nodes reach this node at`, { publicIp: underlay.ip });
    }
    this.parts.publicIp = underlay.ip;
    const mtu = o.mtu ?? underlay.mtu - ENCAP_OVERHEAD;
    const manager = new LeaseManager({
      registry,
      config,
      value: { nodeName: o.nodeName, publicIp: underlay.ip, port: config.port, vni: config.vni, version: VERSION, engine: o.engine, instance: this.instance },
      ttlS: o.leaseTtlS,
      stateDir: o.stateDir,
      log: this.log,
      clock,
    });
    const lease = await retryWhileEtcdDown('acquire a subnet lease', () => manager.acquire(), this.log, signal, clock);
    const subnet = lease.subnet;
    if (o.releaseOnExit) {
      this.undo.push({
        what: 'lease release',
        run: async () => {
          await manager.release(this.parts.keeper?.record ?? lease);
          await rm(o.subnetFile, { force: true });
          this.log.info({ event: 'lease_released', subnet: formatCidr(subnet) }, 'lease released');
        },
      });
    }

    const queues = this.openTun();
    this.undo.push({ what: 'TUN device', run: () => queues.forEach((q) => q.close()) });
    const tun = queues[0]!;
    const gsoMaxSegs = o.engine === 'native' && o.offload ? NATIVE_MAX_TSO_SEGMENTS : undefined;
    await configureTun(tun.name, `${formatIp(subnet.base)}/${config.network.len}`, mtu, gsoMaxSegs);

    // Forwarding is the host's policy (the CNI bridge plugin turns it on): report it, do not change it.
    if ((await ipForwarding()) === false) this.log.warn({ event: 'ip_forward_off' }, 'net.ipv4.ip_forward is 0: pods cannot reach beyond this node (sysctl -w net.ipv4.ip_forward=1)');
    if (o.podEncapFilter) {
      try {
        const backend = await installEncapFilter(config.network, config.port);
        this.undo.push({ what: 'pod encapsulation filter', run: () => removeEncapFilter(backend, config.port) });
        this.log.info({ event: 'encap_filter', backend, network: formatCidr(config.network), port: config.port }, `dropping UDP to port ${config.port} from pods (${backend})`);
      } catch (err) {
        this.log.warn({ event: 'encap_filter_unavailable', err: errorMessage(err) }, `pods can send encapsulated packets to port ${config.port}: ${errorMessage(err)}`);
      }
    }
    if (o.ipMasq) {
      const backend = await installMasquerade(config.network, subnet);
      this.undo.push({ what: 'ip-masq rules', run: () => removeMasquerade(backend) });
      this.log.info({ event: 'ip_masq', backend, network: formatCidr(config.network) }, `masquerading traffic leaving ${formatCidr(config.network)} (${backend})`);
    }

    const engine = this.createEngine(config, queues, underlay, mtu, subnet.base);
    this.undo.push({ what: 'dataplane', run: () => engine.close() });
    await engine.start();
    this.parts.engine = engine;
    if (underlay.iface && engine.details().boundToDevice === false) {
      this.log.warn({ event: 'bind_device_failed', iface: underlay.iface }, `cannot bind the sending sockets to ${underlay.iface} (a kernel before 5.7 wants CAP_NET_RAW for it); a route into ${tun.name} could loop`);
    }

    const keeper = new LeaseKeeper({ manager, initial: lease, ttlS: o.leaseTtlS, log: this.log, events: { onFatal: (err) => this.fail(err) }, clock });
    const watcher = new LeaseWatcher({
      registry,
      config,
      self: subnet,
      nodeName: o.nodeName,
      instance: this.instance,
      publicIp: parseIp(underlay.ip),
      log: this.log,
      resyncIntervalMs: o.resyncIntervalS * 1000,
      clock,
      events: {
        onTable: (table) => engine.setRoutes(table),
        onSelfDeleted: () => keeper.lostNow('our subnet key was deleted from etcd'),
        onSelfTaken: (rec) =>
          this.fail(rec.lease.nodeName === o.nodeName
            ? new WeftError('WEFT_NODE_NAME_TAKEN', `another weftd took over node name ${o.nodeName} and subnet ${formatCidr(subnet)} from ${rec.lease.publicIp} (a cloned machine, or this node started elsewhere); stopping rather than forwarding for it, with exit status 3 so systemd does not start it again to take the name back: give one of the two machines another --node-name`, {
              subnet: formatCidr(subnet),
              node: rec.lease.nodeName,
              publicIp: rec.lease.publicIp,
            })
            : new WeftError('WEFT_LEASE_CONFLICT', `subnet ${formatCidr(subnet)} is now leased by node ${rec.lease.nodeName} (${rec.lease.publicIp}); stopping rather than forwarding for it`, {
            subnet: formatCidr(subnet),
            node: rec.lease.nodeName,
            publicIp: rec.lease.publicIp,
          })),
      },
    });
    this.undo.push({ what: 'lease watch', run: () => watcher.close() });
    await retryWhileEtcdDown('list leases', () => watcher.start(), this.log, signal, clock);
    keeper.start();
    this.undo.push({ what: 'lease renewal', run: () => keeper.stop() });
    this.parts.keeper = keeper;
    this.parts.watcher = watcher;

    // Whether etcd answers, for readiness: a cheap read every few seconds
    // (renewals are hours apart and the watch can be silent).
    const probe = clock.setInterval(() => void this.probeEtcd(registry, watcher), ETCD_PROBE_MS);
    this.undo.push({ what: 'etcd probe', run: () => clock.clearTimeout(probe) });

    if (o.statsIntervalS > 0) {
      const stats = clock.setInterval(() => this.logStats(engine), o.statsIntervalS * 1000);
      this.undo.push({ what: 'stats', run: () => clock.clearTimeout(stats) });
    }

    await writeSubnetEnv(o.subnetFile, { network: config.network, subnet, mtu, ipMasq: o.ipMasq });
    // Asked to stop while the last steps ran: do not claim readiness now.
    signal.throwIfAborted();
    this.state = 'running';
    this.startSystemd(engine, formatCidr(subnet), watcher);
    this.log.info(
      { event: 'ready', node: o.nodeName, subnet: formatCidr(subnet), public_ip: underlay.ip, tun: tun.name, mtu, engine: engine.kind, ...engine.details(), peers: watcher.peers().length, version: VERSION },
      'weftd ready',
    );
  }

  /**
   * One probe of etcd: logs when it stops and starts answering (renewals are
   * hours apart, so without this an outage would be silent), and on its
   * return re-lists the leases at once.
   */
  private async probeEtcd(registry: Registry, watcher: LeaseWatcher): Promise<void> {
    const wasReachable = registry.reachable;
    try {
      await registry.ping();
      if (!wasReachable) {
        this.log.info({ event: 'etcd_reconnected' }, 'etcd answers again; resyncing leases');
        watcher.resyncNow('etcd reconnected');
      }
    } catch (err) {
      if (wasReachable) this.log.warn({ event: 'etcd_unavailable', what: 'probe', err: errorMessage(err) }, 'etcd unreachable; forwarding with the last table');
    }
  }

  /**
   * Tells systemd we are ready, and keeps its watchdog fed from the event
   * loop for as long as the dataplane forwards: a hung loop or a dead
   * worker stops the keepalives, and systemd restarts weftd.
   */
  private startSystemd(engine: Engine, subnet: string, watcher: LeaseWatcher): void {
    const sd = SystemdNotifier.fromEnv(process.env, this.log);
    if (!sd) return;
    sd.notify({ READY: 1, STATUS: `forwarding for ${subnet}, ${watcher.peers().length} peers`, MAINPID: process.pid });
    this.undo.push({ what: 'systemd notification', run: () => sd.notify({ STOPPING: 1, STATUS: 'stopping' }) });
    if (sd.watchdogIntervalMs === undefined) return;
    const { clock } = this.seams;
    const watchdog = clock.setInterval(() => {
      if (engine.healthy()) sd.notify({ WATCHDOG: 1 });
      else this.log.error({ event: 'watchdog_withheld' }, 'dataplane not forwarding: withholding the systemd watchdog keepalive');
    }, sd.watchdogIntervalMs);
    this.undo.push({ what: 'systemd watchdog', run: () => clock.clearTimeout(watchdog) });
  }

  /** Logs the counters when they moved since the last log: a drop summary at most once per interval. */
  private logStats(engine: Engine): void {
    const counters = engine.counters();
    const text = JSON.stringify(counters);
    if (text === this.lastStats) return;
    this.lastStats = text;
    this.log.info({ event: 'stats', counters }, 'dataplane counters');
  }

  /** The TUN: one plain queue for the js engine; for the native one a queue per worker, with vnet headers if offloading. */
  private openTun(): KernelTun[] {
    const o = this.opts;
    if (o.engine === 'js') return [KernelTun.open(o.tunName)];
    const flags = TUN_MULTI_QUEUE | (o.offload ? TUN_VNET_HDR : 0);
    const queues: KernelTun[] = [];
    try {
      for (let i = 0; i < o.queues; i++) queues.push(KernelTun.open(queues[0]?.name ?? o.tunName, flags));
    } catch (err) {
      for (const q of queues) q.close();
      throw err;
    }
    return queues;
  }

  private createEngine(config: NetworkConfig, queues: KernelTun[], underlay: { ip: string; iface?: string }, mtu: number, tunAddr: number): Engine {
    const bindIp = underlay.ip;
    const cfg = { self: { base: tunAddr, len: config.subnetLen }, tunAddr, vni: config.vni, port: config.port, bindIp: parseIp(bindIp), bindDevice: underlay.iface, mtu };
    const empty = RouteTable.empty(config.network, config.subnetLen);
    if (this.opts.engine === 'js') return new JsEngine(cfg, queues[0]!, new DgramUdp(bindIp, config.port), empty);
    return new NativeEngine(cfg, queues, { vnetHdr: this.opts.offload, udpGso: this.opts.udpGso, udpGro: this.opts.udpGro }, empty);
  }

  /** The underlay address and MTU: from --public-ip/--iface, else the default-route interface. */
  private async underlay(): Promise<{ ip: string; mtu: number; iface?: string }> {
    const o = this.opts;
    const iface = o.iface ?? (o.publicIp ? await interfaceWithAddress(o.publicIp) : await defaultRouteInterface());
    if (!iface) {
      if (o.publicIp && o.mtu) return { ip: o.publicIp, mtu: o.mtu + ENCAP_OVERHEAD };
      throw new WeftError('WEFT_NO_PUBLIC_IP', o.publicIp ? `no interface holds --public-ip ${o.publicIp}; give --iface or --mtu` : 'no default route to find the underlay interface; give --iface or --public-ip', {});
    }
    const info = await interfaceInfo(iface);
    return { ip: o.publicIp ?? info.ip, mtu: info.mtu, iface };
  }

  private tearDown(): Promise<void> {
    this.stopping ??= (async () => {
      while (this.undo.length > 0) {
        const step = this.undo.pop()!;
        try {
          await step.run();
        } catch (err) {
          this.log.warn({ event: 'teardown_failed', what: step.what, err: errorMessage(err) }, `teardown of ${step.what} failed`);
        }
      }
      this.log.info({ event: 'stopped' }, 'weftd stopped');
    })();
    return this.stopping;
  }
}
