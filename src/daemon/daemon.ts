// weftd's lifecycle: set up in order (config, lease, TUN, engine, watch,
// renewals, subnet file), run until a signal or a fatal error, tear down in
// reverse. The lease is kept on exit, so a restart gets the same subnet.
// Everything outside the process comes in through its seams (seams.ts).
//
//   starting --(all set up)--> running --(signal | fatal)--> stopping --> stopped

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ENCAP_OVERHEAD, FEATURE_TCP_CSUM_PARTIAL } from '../constants.js';
import type { Engine } from '../dataplane/engine.js';
import { WeftError, errorMessage } from '../errors.js';
import { writeSubnetEnv } from '../host/subnet_env.js';
import { type Cidr, contains, formatCidr, formatIp, parseIp, underlayAddressProblem } from '../net/ipv4.js';
import { formatListenAddr } from '../net/listen_addr.js';
import { ObserveServer } from '../observe/http_server.js';
import type { DaemonState, DaemonStatus, StatusSource } from '../observe/status.js';
import { configKey } from '../registry/keys.js';
import { LeaseKeeper } from '../registry/lease_keeper.js';
import { LeaseManager } from '../registry/lease_manager.js';
import { LeaseWatcher } from '../registry/lease_watcher.js';
import type { LeaseRecord } from '../registry/registry.js';
import type { NetworkConfig } from '../registry/schema.js';
import { RouteTable } from '../routes/route_table.js';
import { VERSION } from '../version.js';
import type { DaemonOptions } from './options.js';
import { readiness } from './readiness.js';
import { retryWhileEtcdDown } from './retry.js';
import type { DaemonSeams, DataplaneDevice, Underlay } from './seams.js';

/** How often weftd checks that etcd answers. */
const ETCD_PROBE_MS = 5000;

/** Teardown steps, pushed as setup proceeds and run in reverse. */
type Undo = { readonly what: string; readonly run: () => Promise<void> | void };

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
    const { config, publicIp, engine, keeper, watcher } = this.parts;
    const { registry, clock } = this.seams;
    const lastContact = registry.lastContactMs;
    const agoS = lastContact === undefined ? undefined : (clock.now() - lastContact) / 1000;
    return {
      node: this.opts.nodeName,
      version: VERSION,
      state: this.state,
      engine: { kind: this.opts.engine, details: engine?.details() ?? {} },
      network: config ? formatCidr(config.network) : null,
      subnet: keeper ? formatCidr(keeper.record.subnet) : null,
      publicIp: publicIp ?? null,
      leaseExpiresInS: keeper ? keeper.secondsLeft() : null,
      etcd: { endpoints: this.opts.etcdEndpoints, connected: registry.reachable, lastContactAgoS: agoS === undefined ? null : Math.round(agoS) },
      renewals: keeper?.renewals ?? 0,
      reacquisitions: keeper?.reacquisitions ?? 0,
      watchResyncs: watcher?.resyncs ?? 0,
      ignoredLeases: watcher?.ignored ?? 0,
      peers: (watcher?.peers() ?? []).map((p) => ({ subnet: formatCidr(p.subnet), node: p.node, publicIp: formatIp(p.ip), port: p.port })),
      counters: engine ? engine.counters() : null,
      readiness: readiness({
        state: this.state,
        forwarding: keeper !== undefined && engine !== undefined,
        engineHealthy: engine?.healthy() ?? false,
        etcdReachable: registry.reachable,
        etcdDownForS: agoS,
        etcdGraceS: this.opts.etcdGraceS,
        etcdEndpoints: this.opts.etcdEndpoints,
        resyncFailure: watcher?.resyncFailure,
      }),
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

  /** Pushes a teardown step, run in reverse order of setup. */
  private onTeardown(what: string, run: () => Promise<void> | void): void {
    this.undo.push({ what, run });
  }

  /** Retries `fn` while etcd is unreachable, until the daemon stops. */
  private whileEtcdDown<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryWhileEtcdDown(what, fn, this.log, this.stopController.signal, this.seams.clock);
  }

  private async setUp(): Promise<void> {
    // First, so /healthz answers and /readyz says why while we wait for etcd.
    await this.serveObserve();
    const config = await this.readConfig();
    // Before anything a second daemon on this node would fight over: the lease, the TUN, the port.
    const lock = this.seams.host.lockInstance(this.opts.stateDir, this.opts.nodeName);
    this.onTeardown('instance lock', () => lock.release());
    const underlay = await this.underlay(config);
    const mtu = this.opts.mtu ?? underlay.mtu - ENCAP_OVERHEAD;
    const { manager, lease } = await this.lease(config, underlay);
    const device = await this.setUpHost(config, lease.subnet, mtu, underlay);
    const engine = await this.startEngine(config, device, underlay, mtu, lease.subnet);
    const watcher = await this.follow(config, manager, lease, engine, underlay);
    this.startPeriodic(engine, watcher);
    await writeSubnetEnv(this.opts.subnetFile, { network: config.network, subnet: lease.subnet, mtu, ipMasq: this.opts.ipMasq });
    // Asked to stop while the last steps ran: do not claim readiness now.
    this.stopController.signal.throwIfAborted();
    this.state = 'running';
    this.notifyReady(engine, formatCidr(lease.subnet), watcher);
    this.log.info(
      { event: 'ready', node: this.opts.nodeName, subnet: formatCidr(lease.subnet), public_ip: underlay.ip, tun: device.tunName, mtu, engine: engine.kind, ...engine.details(), peers: watcher.peers().length, version: VERSION },
      'weftd ready',
    );
  }

  private async serveObserve(): Promise<void> {
    const addr = this.opts.metricsAddr;
    if (!addr) return;
    const http = await ObserveServer.start(this, addr, (err) => this.log.warn({ event: 'metrics_server_error', err: err.message }, 'metrics server error'));
    this.onTeardown('metrics server', () => http.close());
    this.log.info({ event: 'metrics_listening', addr: formatListenAddr(http.address) }, `serving /metrics, /healthz, /readyz, /status on ${formatListenAddr(http.address)}`);
  }

  private async readConfig(): Promise<NetworkConfig> {
    const o = this.opts;
    const config = await this.whileEtcdDown('read network config', () => this.seams.registry.getConfig());
    if (!config) {
      throw new WeftError('WEFT_CONFIG_MISSING', `no network config at ${configKey(o.etcdPrefix)} in etcd ${o.etcdEndpoints.join(',')}; run: weftctl init --network 10.244.0.0/16`, {
        key: configKey(o.etcdPrefix),
      });
    }
    this.parts.config = config;
    this.log.info({ event: 'config', network: formatCidr(config.network), subnet_len: config.subnetLen, vni: config.vni, port: config.port }, 'network config read');
    return config;
  }

  /** The underlay, refused when no node can have its address or it lies inside the cluster network. */
  private async underlay(config: NetworkConfig): Promise<Underlay> {
    const o = this.opts;
    const underlay = await this.seams.host.underlay({ publicIp: o.publicIp, iface: o.iface, mtu: o.mtu });
    const ip = parseIp(underlay.ip);
    const problem = underlayAddressProblem(ip) ?? (contains(config.network, ip) ? `is inside the cluster network ${formatCidr(config.network)}` : undefined);
    if (problem) {
      throw new WeftError('WEFT_NO_PUBLIC_IP', `the underlay address ${underlay.ip} ${problem}: give --public-ip (or --iface) an address other nodes reach this node at`, { publicIp: underlay.ip });
    }
    this.parts.publicIp = underlay.ip;
    return underlay;
  }

  private async lease(config: NetworkConfig, underlay: Underlay): Promise<{ manager: LeaseManager; lease: LeaseRecord }> {
    const o = this.opts;
    const manager = new LeaseManager({
      registry: this.seams.registry,
      config,
      value: { nodeName: o.nodeName, publicIp: underlay.ip, port: config.port, vni: config.vni, version: VERSION, engine: o.engine, instance: this.instance, features: this.features() },
      ttlS: o.leaseTtlS,
      stateDir: o.stateDir,
      log: this.log,
      clock: this.seams.clock,
    });
    const lease = await this.whileEtcdDown('acquire a subnet lease', () => manager.acquire());
    if (o.releaseOnExit) {
      this.onTeardown('lease release', async () => {
        await manager.release(this.parts.keeper?.record ?? lease);
        await rm(o.subnetFile, { force: true });
        this.log.info({ event: 'lease_released', subnet: formatCidr(lease.subnet) }, 'lease released');
      });
    }
    return { manager, lease };
  }

  /** The dataplane's device, configured for the subnet; the pod encapsulation filter and masquerading as asked. */
  private async setUpHost(config: NetworkConfig, subnet: Cidr, mtu: number, underlay: Underlay): Promise<DataplaneDevice> {
    const o = this.opts;
    const { host } = this.seams;
    const device = this.seams.dataplane.open();
    this.onTeardown('dataplane device', () => device.close());
    await device.configure({ network: config.network, subnet, mtu, port: config.port, vni: config.vni, underlay });

    // Forwarding is the host's policy (the CNI bridge plugin turns it on): report it, do not change it.
    if ((await host.ipForwarding()) === false) this.log.warn({ event: 'ip_forward_off' }, 'net.ipv4.ip_forward is 0: pods cannot reach beyond this node (sysctl -w net.ipv4.ip_forward=1)');
    if (o.podEncapFilter) {
      try {
        const filter = await host.installEncapFilter(config.network, config.port);
        this.onTeardown('pod encapsulation filter', () => filter.remove());
        this.log.info({ event: 'encap_filter', backend: filter.backend, network: formatCidr(config.network), port: config.port }, `dropping UDP to port ${config.port} from pods (${filter.backend})`);
      } catch (err) {
        this.log.warn({ event: 'encap_filter_unavailable', err: errorMessage(err) }, `pods can send encapsulated packets to port ${config.port}: ${errorMessage(err)}`);
      }
    }
    if (o.ipMasq) {
      const masq = await host.installMasquerade(config.network, subnet);
      this.onTeardown('ip-masq rules', () => masq.remove());
      this.log.info({ event: 'ip_masq', backend: masq.backend, network: formatCidr(config.network) }, `masquerading traffic leaving ${formatCidr(config.network)} (${masq.backend})`);
    }
    return device;
  }

  private async startEngine(config: NetworkConfig, device: DataplaneDevice, underlay: Underlay, mtu: number, subnet: Cidr): Promise<Engine> {
    const tunAddr = subnet.base;
    const cfg = { self: { base: tunAddr, len: config.subnetLen }, tunAddr, vni: config.vni, port: config.port, bindIp: parseIp(underlay.ip), bindDevice: underlay.iface, mtu };
    const engine = device.createEngine(cfg, RouteTable.empty(config.network, config.subnetLen));
    this.onTeardown('dataplane', () => engine.close());
    await engine.start();
    this.parts.engine = engine;
    if (underlay.iface && engine.details().boundToDevice === false) {
      this.log.warn({ event: 'bind_device_failed', iface: underlay.iface }, `cannot bind the sending sockets to ${underlay.iface} (a kernel before 5.7 wants CAP_NET_RAW for it); a route into ${device.tunName} could loop`);
    }
    return engine;
  }

  /** Follows the other nodes' leases into the engine's route table, and keeps our own lease. */
  private async follow(config: NetworkConfig, manager: LeaseManager, lease: LeaseRecord, engine: Engine, underlay: Underlay): Promise<LeaseWatcher> {
    const o = this.opts;
    const { clock } = this.seams;
    const subnet = lease.subnet;
    const keeper = new LeaseKeeper({ manager, initial: lease, ttlS: o.leaseTtlS, log: this.log, events: { onFatal: (err) => this.fail(err) }, clock });
    const watcher = new LeaseWatcher({
      registry: this.seams.registry,
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
        onSelfTaken: (rec) => this.fail(this.takenOver(subnet, rec)),
      },
    });
    this.onTeardown('lease watch', () => watcher.close());
    await this.whileEtcdDown('list leases', () => watcher.start());
    keeper.start();
    this.onTeardown('lease renewal', () => keeper.stop());
    this.parts.keeper = keeper;
    this.parts.watcher = watcher;
    return watcher;
  }

  /** Why this daemon must stop when its subnet's key names someone else: a clone under its node name (exit 3), or another node. */
  private takenOver(subnet: Cidr, rec: LeaseRecord): WeftError {
    const o = this.opts;
    const details = { subnet: formatCidr(subnet), node: rec.lease.nodeName, publicIp: rec.lease.publicIp };
    if (rec.lease.nodeName === o.nodeName) {
      return new WeftError(
        'WEFT_NODE_NAME_TAKEN',
        `another weftd took over node name ${o.nodeName} and subnet ${formatCidr(subnet)} from ${rec.lease.publicIp} (a cloned machine, or this node started elsewhere); stopping rather than forwarding for it, with exit status 3 so systemd does not start it again to take the name back: give one of the two machines another --node-name`,
        details,
      );
    }
    return new WeftError('WEFT_LEASE_CONFLICT', `subnet ${formatCidr(subnet)} is now leased by node ${rec.lease.nodeName} (${rec.lease.publicIp}); stopping rather than forwarding for it`, details);
  }

  /** The etcd probe (renewals are hours apart and the watch can be silent) and the counter logs. */
  private startPeriodic(engine: Engine, watcher: LeaseWatcher): void {
    const { clock } = this.seams;
    const probe = clock.setInterval(() => void this.probeEtcd(watcher), ETCD_PROBE_MS);
    this.onTeardown('etcd probe', () => clock.clearTimeout(probe));
    if (this.opts.statsIntervalS > 0) {
      const stats = clock.setInterval(() => this.logStats(engine), this.opts.statsIntervalS * 1000);
      this.onTeardown('stats', () => clock.clearTimeout(stats));
    }
  }

  /**
   * One probe of etcd: logs when it stops and starts answering (renewals are
   * hours apart, so without this an outage would be silent), and on its
   * return re-lists the leases at once.
   */
  private async probeEtcd(watcher: LeaseWatcher): Promise<void> {
    const { registry } = this.seams;
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
   * Tells the service manager we are ready, and keeps its watchdog fed from
   * the event loop for as long as the dataplane forwards: a hung loop or a
   * dead worker stops the keepalives, and systemd restarts weftd.
   */
  private notifyReady(engine: Engine, subnet: string, watcher: LeaseWatcher): void {
    const { notifier: sd, clock } = this.seams;
    if (!sd) return;
    sd.notify({ READY: 1, STATUS: `forwarding for ${subnet}, ${watcher.peers().length} peers`, MAINPID: process.pid });
    this.onTeardown('systemd notification', () => sd.notify({ STOPPING: 1, STATUS: 'stopping' }));
    if (sd.watchdogIntervalMs === undefined) return;
    const watchdog = clock.setInterval(() => {
      if (engine.healthy()) sd.notify({ WATCHDOG: 1 });
      else this.log.error({ event: 'watchdog_withheld' }, 'dataplane not forwarding: withholding the systemd watchdog keepalive');
    }, sd.watchdogIntervalMs);
    this.onTeardown('systemd watchdog', () => clock.clearTimeout(watchdog));
  }

  /** Logs the counters when they moved since the last log: a drop summary at most once per interval. */
  private logStats(engine: Engine): void {
    const counters = engine.counters();
    const text = JSON.stringify(counters);
    if (text === this.lastStats) return;
    this.lastStats = text;
    this.log.info({ event: 'stats', counters }, 'dataplane counters');
  }

  /** What this node's lease offers peers: the native engine with vnet headers writes partial TCP checksums to its TUN. */
  private features(): string[] {
    return this.opts.engine === 'native' && this.opts.offload ? [FEATURE_TCP_CSUM_PARTIAL] : [];
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
