// weftd's lifecycle: set up what lasts the daemon's life (observe server,
// config, instance lock, underlay), then hold a subnet (lease, TUN, engine,
// watch, renewals, subnet file) until a signal or a fatal error, tearing
// each down in reverse. A subnet lost to another node ends only that
// tenure: the subnet file says so first, the rest is torn down, and the
// daemon takes another subnet, or waits up for one when the network is full.
// The lease is kept on exit, so a restart gets the same subnet. Everything
// outside the process comes in through its seams (seams.ts).
//
//   starting --> running --(subnet lost)--> waiting --(subnet taken)--> running
//       \--(network full)--> waiting             any --(signal | fatal)--> stopping --> stopped

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ENCAP_OVERHEAD, ETCD_PROBE_MS, FEATURE_TCP_CSUM_PARTIAL } from '../constants.js';
import { COUNTER_NAMES, type CounterSnapshot } from '../dataplane/counters.js';
import type { Engine } from '../dataplane/engine.js';
import { WeftError, errorMessage, isWeftError } from '../errors.js';
import { parseSubnetFile, writeNoSubnet, writeSubnetEnv } from '../host/subnet_env.js';
import { type Cidr, cidrEquals, contains, formatCidr, formatIp, parseIp, underlayAddressProblem } from '../net/ipv4.js';
import { formatListenAddr } from '../net/listen_addr.js';
import { ObserveServer } from '../observe/http_server.js';
import type { DaemonState, DaemonStatus, FirewallStatus, HostStatus, StatusSource } from '../observe/status.js';
import { untilLeaseDeleted } from '../registry/free_subnet.js';
import { configKey } from '../registry/keys.js';
import { LeaseKeeper } from '../registry/lease_keeper.js';
import { LeaseManager } from '../registry/lease_manager.js';
import { IGNORED_REASONS } from '../registry/lease_problem.js';
import { LeaseWatcher } from '../registry/lease_watcher.js';
import type { LeaseRecord } from '../registry/registry.js';
import type { NetworkConfig } from '../registry/schema.js';
import { RouteTable } from '../routes/route_table.js';
import { VERSION } from '../version.js';
import { EncryptionControl } from './encryption.js';
import type { DaemonOptions } from './options.js';
import { readiness } from './readiness.js';
import { retryWhileEtcdDown } from './retry.js';
import type { DaemonSeams, DataplaneDevice, Underlay } from './seams.js';

/** A node waiting for a free subnet lists again at least this often, should the watch miss a release. */
const FULL_RECHECK_MS = 30_000;
/** ...and says it still waits at most this often. */
const FULL_LOG_MS = 300_000;

/** Teardown steps, pushed as setup proceeds and run in reverse. */
type Undo = { readonly what: string; readonly run: () => Promise<void> | void };

/** What lasts the daemon's life, set up once. */
interface Base {
  readonly config: NetworkConfig;
  readonly underlay: Underlay;
  readonly manager: LeaseManager;
  /** The node's key and encryption mode; it knows the TUN's MTU. */
  readonly enc: EncryptionControl;
}

/** Why a tenure ended without a signal: its subnet is another node's now. */
interface Loss {
  readonly subnet: Cidr;
  readonly reason: string;
}

/** One subnet held, and what was set up for it; ended by a loss (or by the daemon stopping). */
class Tenure {
  readonly undo: Undo[] = [];
  lost: Loss | undefined;
  /** Renews the lease once the tenure forwards; its record is the lease as last rewritten. */
  keeper: LeaseKeeper | undefined;
  private settle!: (loss: Loss | undefined) => void;
  readonly ended = new Promise<Loss | undefined>((resolve) => (this.settle = resolve));

  constructor(
    readonly lease: LeaseRecord,
    /** When the lease expires at the earliest: its acquisition was asked for at least a TTL before. */
    public expiresAtMs: number,
  ) {}

  end(loss: Loss | undefined): void {
    this.lost ??= loss;
    this.settle(this.lost);
  }
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
  private tenure: Tenure | undefined;
  /** Why the node holds no subnet, while it holds none after setup. */
  private noSubnet: string | undefined;
  /** The subnet lost last, and how, until another is held. */
  private lastLoss: Loss | undefined;
  private readyNotified = false;
  /** The node's key and encryption mode, once the key is loaded. */
  private encryption: EncryptionControl | undefined;
  /** The config (or the reason it did not read) a warning was last logged for. */
  private configWarned = '';
  /** What earlier tenures counted, so the totals stay monotonic across a change of subnet. */
  private readonly past = { renewals: 0, reacquisitions: 0, resyncs: 0, losses: 0, counters: undefined as CounterSnapshot | undefined };
  /** What is set up now, for status(); fields fill in as setup proceeds and empty as a tenure ends. */
  private parts: {
    config?: NetworkConfig;
    underlay?: Underlay;
    device?: NonNullable<HostStatus['device']>;
    encapFilter?: Pick<FirewallStatus, 'backend' | 'error'>;
    ipMasqBackend?: string;
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
      await this.serve(await this.setUp());
    } catch (err) {
      await this.tearDown();
      if (this.stopController.signal.aborted && !this.fatal) return;
      throw this.fatal ?? err;
    }
    await this.tearDown();
    if (this.fatal) throw this.fatal;
  }

  status(): DaemonStatus {
    const { config, underlay, engine, keeper, watcher } = this.parts;
    const { registry, clock } = this.seams;
    const lastContact = registry.lastContactMs;
    const agoS = lastContact === undefined ? undefined : (clock.now() - lastContact) / 1000;
    const byReason = watcher?.ignoredByReason() ?? (Object.fromEntries(IGNORED_REASONS.map((r) => [r, 0])) as DaemonStatus['ignoredLeasesByReason']);
    return {
      node: this.opts.nodeName,
      version: VERSION,
      state: this.state,
      engine: { kind: this.opts.engine, details: engine?.details() ?? {} },
      network: config ? formatCidr(config.network) : null,
      subnet: keeper ? formatCidr(keeper.record.subnet) : null,
      noSubnet: this.noSubnet ?? null,
      publicIp: underlay?.ip ?? null,
      port: config ? config.port : null,
      leaseExpiresInS: keeper ? keeper.secondsLeft() : null,
      leaseTtlS: this.opts.leaseTtlS,
      etcd: { endpoints: this.opts.etcdEndpoints, prefix: this.opts.etcdPrefix, connected: registry.reachable, lastContactAgoS: agoS === undefined ? null : Math.round(agoS) },
      renewals: this.past.renewals + (keeper?.renewals ?? 0),
      reacquisitions: this.past.reacquisitions + (keeper?.reacquisitions ?? 0),
      subnetLosses: this.past.losses,
      watchResyncs: this.past.resyncs + (watcher?.resyncs ?? 0),
      ignoredLeases: watcher?.ignored ?? 0,
      ignoredLeasesByReason: byReason,
      peers: (watcher?.peers() ?? []).map((p) => ({ subnet: formatCidr(p.subnet), node: p.node, publicIp: formatIp(p.ip), port: p.port })),
      counters: this.counters(),
      encryption: this.encryption?.status() ?? null,
      readiness: readiness({
        state: this.state,
        forwarding: keeper !== undefined && engine !== undefined,
        engineHealthy: engine?.healthy() ?? false,
        etcdReachable: registry.reachable,
        etcdDownForS: agoS,
        etcdGraceS: this.opts.etcdGraceS,
        etcdEndpoints: this.opts.etcdEndpoints,
        resyncFailure: watcher?.resyncFailure,
        noSubnet: this.noSubnet,
      }),
      host: this.hostStatus(),
    };
  }

  private hostStatus(): HostStatus {
    const { underlay, device, encapFilter, ipMasqBackend } = this.parts;
    const o = this.opts;
    return {
      device: device ?? null,
      underlay: underlay ? { iface: underlay.iface ?? null, mtu: underlay.mtu } : null,
      encapOverhead: this.encryption?.overhead ?? ENCAP_OVERHEAD,
      subnetFile: o.subnetFile,
      encapFilter: { wanted: o.podEncapFilter, backend: encapFilter?.backend ?? null, error: encapFilter?.error ?? null },
      ipMasq: { wanted: o.ipMasq, backend: ipMasqBackend ?? null, error: null },
    };
  }

  /** A new WireGuard key (SIGUSR1, `weftctl rotate-key`): written, used for new handshakes, published in the lease. */
  async rotateKey(): Promise<void> {
    if (!this.encryption || this.state === 'starting' || this.state === 'stopping') {
      this.log.warn({ event: 'wireguard_key_rotation_refused', state: this.state }, `key rotation asked for while weftd is ${this.state}: ignored`);
      return;
    }
    await this.encryption.rotate();
  }

  /** Asks the daemon to stop (signal handlers call this); idempotent. */
  stop(reason: string): void {
    if (this.stopController.signal.aborted) return;
    this.log.info({ event: 'shutdown', reason }, 'shutting down');
    this.state = 'stopping';
    this.stopController.abort(new Error(`stopped: ${reason}`));
    this.tenure?.end(undefined);
  }

  private fail(err: WeftError): void {
    if (this.stopController.signal.aborted) return;
    this.fatal = err;
    this.state = 'stopping';
    this.log.error({ event: 'fatal', code: err.code, err: err.message }, err.message);
    this.stopController.abort(err);
    this.tenure?.end(undefined);
  }

  /** Retries `fn` while etcd is unreachable, until the daemon stops. */
  private whileEtcdDown<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryWhileEtcdDown(what, fn, this.log, this.stopController.signal, this.seams.clock);
  }

  private async setUp(): Promise<Base> {
    // First, so /healthz answers and /readyz says why while we wait for etcd.
    await this.serveObserve();
    const config = await this.readConfig();
    // Before anything a second daemon on this node would fight over: the lease, the TUN, the port.
    const lock = this.seams.host.lockInstance(this.opts.stateDir, this.opts.nodeName);
    this.undo.push({ what: 'instance lock', run: () => lock.release() });
    if (lock.problem) this.log.warn({ event: 'state_write_failed', path: lock.problem.details.path, err: lock.problem.message }, lock.problem.message);
    const underlay = await this.underlay(config);
    // The kernel's VXLAN-GPE device has no WireGuard: refused while the cluster encrypts (a change to it later is logged, and the node stays unencrypted).
    const encrypts = this.opts.engine !== 'kernel';
    if (!encrypts && config.encryption !== 'off') {
      throw new WeftError(
        'WEFT_ENGINE_REFUSED',
        `--engine kernel cannot encrypt, and the network config asks for encryption ${config.encryption}: run --engine native (or js), or turn encryption off (weftctl encryption off)`,
        { encryption: config.encryption },
      );
    }
    const enc = new EncryptionControl({ stateDir: this.opts.stateDir, port: config.wireguardPort, underlayMtu: underlay.mtu, mtuFlag: this.opts.mtu, encrypts, log: this.log });
    this.encryption = enc;
    const base = { nodeName: this.opts.nodeName, publicIp: underlay.ip, port: config.port, vni: config.vni, version: VERSION, engine: this.opts.engine, instance: this.instance, features: this.features() };
    const manager = new LeaseManager({ registry: this.seams.registry, config, value: base, ttlS: this.opts.leaseTtlS, stateDir: this.opts.stateDir, log: this.log, clock: this.seams.clock });
    manager.setValue(enc.begin(config.encryption, manager, base));
    this.startPeriodic();
    return { config, underlay, manager, enc };
  }

  /** Holds one subnet after another until the daemon stops: each lost subnet is replaced by the next free one. */
  private async serve(b: Base): Promise<void> {
    for (;;) {
      const asked = this.seams.clock.now();
      const t = new Tenure(await this.takeSubnet(b), asked + this.opts.leaseTtlS * 1000);
      this.tenure = t;
      if (this.stopController.signal.aborted) t.end(undefined);
      // A failure here is fatal; tearDown() releases the tenure.
      await this.hold(b, t);
      const loss = await t.ended;
      await this.release(t);
      this.tenure = undefined;
      if (!loss) return;
    }
  }

  private async serveObserve(): Promise<void> {
    const addr = this.opts.metricsAddr;
    if (!addr) return;
    const http = await ObserveServer.start(this, addr, (err) => this.log.warn({ event: 'metrics_server_error', err: err.message }, 'metrics server error'));
    this.undo.push({ what: 'metrics server', run: () => http.close() });
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
    this.parts.underlay = underlay;
    return underlay;
  }

  /**
   * Leases a subnet; on a full network, stays up (not ready) and waits for a
   * lease to go, then tries again: exiting would only have systemd restart
   * weftd until its start limit gives up on the node for good.
   */
  private async takeSubnet(b: Base): Promise<LeaseRecord> {
    const { config } = b;
    const net = `a free /${config.subnetLen} in ${formatCidr(config.network)}`;
    let since: number | undefined;
    let lastLog = 0;
    for (;;) {
      try {
        const lease = await this.whileEtcdDown('acquire a subnet lease', () => b.manager.acquire());
        if (since !== undefined) this.log.info({ event: 'subnet_free', subnet: formatCidr(lease.subnet), waited_s: Math.round((this.seams.clock.now() - since) / 1000) }, 'a subnet came free');
        return lease;
      } catch (err) {
        if (!isWeftError(err, 'WEFT_NETWORK_FULL')) throw err;
        const now = this.seams.clock.now();
        const leased = Number(err.details.leased);
        if (since === undefined) {
          since = now;
          this.enterWaiting(config.network, `waiting for ${net} (all ${leased} leased; the first subnet is never handed out)`);
        }
        if (now - lastLog >= FULL_LOG_MS) {
          lastLog = now;
          this.log.warn(
            { event: 'network_full', network: formatCidr(config.network), subnet_len: config.subnetLen, leased, waiting_s: Math.round((now - since) / 1000) },
            `${err.message}; waiting for a subnet to come free (not ready meanwhile)`,
          );
        }
        await untilLeaseDeleted(this.seams.registry, String(err.details.revision), this.seams.clock, FULL_RECHECK_MS, this.stopController.signal);
      }
    }
  }

  /**
   * The node holds no subnet: the subnet file says so at once, and /readyz,
   * /status and systemd's STATUS say why (what it lost, if it lost one, and
   * what it does about it).
   */
  private enterWaiting(network: Cidr, what: string): void {
    const loss = this.lastLoss;
    const reason = loss ? `lost ${formatCidr(loss.subnet)}: ${loss.reason}; ${what}` : what;
    this.markNoSubnet(network, reason, loss?.subnet);
    this.state = 'waiting';
    this.noSubnet = reason;
    this.notifyStatus(`not forwarding: ${reason}`);
  }

  /** Replaces the subnet file with the marker of no subnet (the CNI plugin then refuses ADD with "try again later"). */
  private markNoSubnet(network: Cidr, reason: string, lost?: Cidr): void {
    try {
      writeNoSubnet(this.opts.subnetFile, { network, reason, ...(lost ? { lost } : {}) });
    } catch (err) {
      this.log.error({ event: 'subnet_file_failed', path: this.opts.subnetFile, err: errorMessage(err) }, errorMessage(err));
    }
  }

  /** The subnet the file names now, if it names one. */
  private subnetInFile(): Cidr | undefined {
    try {
      return parseSubnetFile(readFileSync(this.opts.subnetFile, 'utf8'), this.opts.subnetFile).held?.subnet;
    } catch {
      return undefined;
    }
  }

  /** Sets up everything for `t`'s subnet; resolves once it forwards (or the tenure ended meanwhile). */
  private async hold(b: Base, t: Tenure): Promise<void> {
    const { config } = b;
    const subnet = t.lease.subnet;
    const before = this.subnetInFile();
    // The file still names a subnet this node does not hold (a restart that got another): no pod may get an address from it meanwhile.
    if (before && !cidrEquals(before, subnet)) {
      this.markNoSubnet(config.network, `the node's subnet changes from ${formatCidr(before)} to ${formatCidr(subnet)}; weftd is setting it up`, before);
    }
    if (this.opts.releaseOnExit) {
      t.undo.push({
        what: 'lease release',
        run: async () => {
          if (t.lost) return;
          await b.manager.release(t.keeper?.record ?? t.lease);
          await rm(this.opts.subnetFile, { force: true });
          this.log.info({ event: 'lease_released', subnet: formatCidr(subnet) }, 'lease released');
        },
      });
    }
    const device = await this.setUpHost(t, config, subnet, b.enc.mtu, b.underlay);
    const engine = await this.startEngine(t, config, device, b.underlay, b.enc, subnet);
    const watcher = await this.follow(t, b, engine, device);
    // Lost while the last steps ran: the file must not name it again.
    if (t.lost || this.stopController.signal.aborted) return;
    this.writeSubnetFile(b, t);
    this.state = 'running';
    this.noSubnet = undefined;
    this.lastLoss = undefined;
    this.notifyStatus(`forwarding for ${formatCidr(subnet)}, ${watcher.peers().length} peers`);
    this.log.info(
      { event: 'ready', node: this.opts.nodeName, subnet: formatCidr(subnet), public_ip: b.underlay.ip, tun: device.tunName, mtu: b.enc.mtu, engine: engine.kind, ...engine.details(), peers: watcher.peers().length, version: VERSION },
      'weftd ready',
    );
  }

  /** The subnet file for `t`: its subnet and until when its lease holds for sure (the CNI plugin hands out no address after that). */
  private writeSubnetFile(b: Base, t: Tenure): void {
    writeSubnetEnv(this.opts.subnetFile, { network: b.config.network, subnet: t.lease.subnet, mtu: b.enc.mtu, ipMasq: this.opts.ipMasq, leaseExpiresMs: t.expiresAtMs });
  }

  /** A renewal moved `t`'s expiry: the subnet file says so, unless the subnet is lost meanwhile or not yet announced. */
  private renewed(b: Base, t: Tenure, expiresAtMs: number): void {
    t.expiresAtMs = expiresAtMs;
    if (t.lost || this.tenure !== t || this.state !== 'running') return;
    try {
      this.writeSubnetFile(b, t);
    } catch (err) {
      this.log.error({ event: 'subnet_file_failed', path: this.opts.subnetFile, err: errorMessage(err) }, `${errorMessage(err)}; the CNI plugin refuses new pods once the lease it names expires`);
    }
  }

  /** Ends `t` because its subnet is another node's now: the subnet file first, then everything else goes. */
  private lose(t: Tenure, reason: string): void {
    if (t.lost || this.stopController.signal.aborted || !this.parts.config) return;
    const subnet = t.lease.subnet;
    t.lost = { subnet, reason };
    this.lastLoss = t.lost;
    // Before anything else: no pod may get an address from a subnet this node does not hold.
    this.enterWaiting(this.parts.config.network, 'taking another subnet');
    this.past.losses++;
    this.log.error({ event: 'subnet_lost', subnet: formatCidr(subnet), reason }, `lost ${formatCidr(subnet)}: ${reason}; stopped forwarding for it, taking another subnet`);
    t.end(t.lost);
  }

  /** Tears down what `t` set up, in reverse, keeping the totals it counted. */
  private async release(t: Tenure): Promise<void> {
    const { keeper, watcher, engine } = this.parts;
    this.past.renewals += keeper?.renewals ?? 0;
    this.past.reacquisitions += keeper?.reacquisitions ?? 0;
    this.past.resyncs += watcher?.resyncs ?? 0;
    if (engine) this.past.counters = this.counters() ?? undefined;
    this.parts = { config: this.parts.config, underlay: this.parts.underlay };
    await this.runUndo(t.undo);
  }

  /** The engine's counters plus those of the engines of earlier subnets. */
  private counters(): CounterSnapshot | null {
    const now = this.parts.engine?.counters();
    const past = this.past.counters;
    if (!now || !past) return now ?? past ?? null;
    const sum = { ...now };
    for (const n of COUNTER_NAMES) sum[n] += past[n];
    return sum;
  }

  /** The dataplane's device, configured for the subnet; the pod encapsulation filter and masquerading as asked. */
  private async setUpHost(t: Tenure, config: NetworkConfig, subnet: Cidr, mtu: number, underlay: Underlay): Promise<DataplaneDevice> {
    const o = this.opts;
    const { host } = this.seams;
    const device = this.seams.dataplane.open();
    t.undo.push({ what: 'dataplane device', run: () => device.close() });
    this.parts.device = await device.configure({ network: config.network, subnet, mtu, port: config.port, vni: config.vni, underlay });

    // Forwarding is the host's policy (the CNI bridge plugin turns it on): report it, do not change it.
    if ((await host.ipForwarding()) === false) this.log.warn({ event: 'ip_forward_off' }, 'net.ipv4.ip_forward is 0: pods cannot reach beyond this node (sysctl -w net.ipv4.ip_forward=1)');
    if (o.podEncapFilter) {
      try {
        const filter = await host.installEncapFilter(config.network, config.port);
        this.parts.encapFilter = { backend: filter.backend, error: null };
        t.undo.push({ what: 'pod encapsulation filter', run: () => filter.remove() });
        this.log.info({ event: 'encap_filter', backend: filter.backend, network: formatCidr(config.network), port: config.port }, `dropping UDP to port ${config.port} from pods (${filter.backend})`);
      } catch (err) {
        this.parts.encapFilter = { backend: null, error: errorMessage(err) };
        this.log.warn({ event: 'encap_filter_unavailable', err: errorMessage(err) }, `pods can send encapsulated packets to port ${config.port}: ${errorMessage(err)}`);
      }
    }
    if (o.ipMasq) {
      const masq = await host.installMasquerade(config.network, subnet);
      this.parts.ipMasqBackend = masq.backend;
      t.undo.push({ what: 'ip-masq rules', run: () => masq.remove() });
      this.log.info({ event: 'ip_masq', backend: masq.backend, network: formatCidr(config.network) }, `masquerading traffic leaving ${formatCidr(config.network)} (${masq.backend})`);
    }
    return device;
  }

  private async startEngine(t: Tenure, config: NetworkConfig, device: DataplaneDevice, underlay: Underlay, enc: EncryptionControl, subnet: Cidr): Promise<Engine> {
    const tunAddr = subnet.base;
    const cfg = {
      self: { base: tunAddr, len: config.subnetLen },
      tunAddr,
      vni: config.vni,
      port: config.port,
      bindIp: parseIp(underlay.ip),
      bindDevice: underlay.iface,
      mtu: enc.mtuFor('off'),
      wireguard: { privateKey: enc.key, port: config.wireguardPort },
      clock: this.seams.clock,
    };
    const engine = device.createEngine(cfg, RouteTable.empty(config.network, config.subnetLen));
    t.undo.push({ what: 'dataplane', run: () => engine.close() });
    await engine.start();
    this.parts.engine = engine;
    if (underlay.iface && engine.details().boundToDevice === false) {
      this.log.warn({ event: 'bind_device_failed', iface: underlay.iface }, `cannot bind the sending sockets to ${underlay.iface} (a kernel before 5.7 wants CAP_NET_RAW for it); a route into ${device.tunName} could loop`);
    }
    return engine;
  }

  /** Follows the other nodes' leases into the engine's route table, and keeps our own lease. */
  private async follow(t: Tenure, b: Base, engine: Engine, device: DataplaneDevice): Promise<LeaseWatcher> {
    const o = this.opts;
    const { clock } = this.seams;
    const subnet = t.lease.subnet;
    const keeper = new LeaseKeeper({
      manager: b.manager,
      initial: t.lease,
      expiresAtMs: t.expiresAtMs,
      ttlS: o.leaseTtlS,
      log: this.log,
      clock,
      events: { onLost: (err) => this.onTakenOver(t, String(err.details.node ?? ''), err.message), onRenewed: (at) => this.renewed(b, t, at) },
    });
    const watcher = new LeaseWatcher({
      registry: this.seams.registry,
      config: b.config,
      self: subnet,
      nodeName: o.nodeName,
      instance: this.instance,
      publicIp: parseIp(b.underlay.ip),
      log: this.log,
      resyncIntervalMs: o.resyncIntervalS * 1000,
      clock,
      events: {
        onTable: (table) => engine.setRoutes(table),
        onSelfDeleted: () => keeper.lostNow('our subnet key was deleted from etcd'),
        onSelfTaken: (rec) => this.onTakenOver(t, rec.lease.nodeName, `now leased by node ${rec.lease.nodeName} (${rec.lease.publicIp})`, rec.lease.publicIp),
      },
    });
    t.undo.push({ what: 'lease watch', run: () => watcher.close() });
    t.keeper = keeper;
    this.parts.keeper = keeper;
    this.parts.watcher = watcher;
    // Before the first table: it already speaks WireGuard to keyed peers when the mode asks for it.
    t.undo.push({ what: 'encryption', run: () => b.enc.detach() });
    await b.enc.attach({ engine, keeper, watcher, setMtu: (mtu) => this.setMtu(b, t, device, mtu) });
    await this.whileEtcdDown('list leases', () => watcher.start());
    keeper.start();
    t.undo.push({ what: 'lease renewal', run: () => keeper.stop() });
    return watcher;
  }

  /**
   * `t`'s subnet key names someone else now. Under our own node name that
   * is a clone of this machine: stop, with exit status 3 so systemd does not
   * start us again to take the name back. Another node: the subnet is lost.
   */
  private onTakenOver(t: Tenure, holder: string, reason: string, holderIp?: string): void {
    const o = this.opts;
    if (holder !== o.nodeName) return this.lose(t, reason);
    const subnet = formatCidr(t.lease.subnet);
    this.fail(
      new WeftError(
        'WEFT_NODE_NAME_TAKEN',
        `another weftd took over node name ${o.nodeName} and subnet ${subnet}${holderIp ? ` from ${holderIp}` : ''} (a cloned machine, or this node started elsewhere); stopping rather than forwarding for it, with exit status 3 so systemd does not start it again to take the name back: give one of the two machines another --node-name`,
        { subnet, node: holder, publicIp: holderIp },
      ),
    );
  }

  /** The etcd probe (renewals are hours apart and the watch can be silent), the counter logs and the systemd watchdog. */
  private startPeriodic(): void {
    const { clock } = this.seams;
    const probe = clock.setInterval(() => void this.probeEtcd(), ETCD_PROBE_MS);
    this.undo.push({ what: 'etcd probe', run: () => clock.clearTimeout(probe) });
    if (this.opts.statsIntervalS > 0) {
      const stats = clock.setInterval(() => this.logStats(), this.opts.statsIntervalS * 1000);
      this.undo.push({ what: 'stats', run: () => clock.clearTimeout(stats) });
    }
  }

  /**
   * One probe of etcd: logs when it stops and starts answering (renewals are
   * hours apart, so without this an outage would be silent), on its return
   * re-lists the leases at once, and then reads the network config to follow
   * a change of its encryption.
   */
  private async probeEtcd(): Promise<void> {
    const { registry } = this.seams;
    const wasReachable = registry.reachable;
    try {
      await registry.ping();
      if (!wasReachable) {
        this.log.info({ event: 'etcd_reconnected' }, 'etcd answers again; resyncing leases');
        this.parts.watcher?.resyncNow('etcd reconnected');
      }
    } catch (err) {
      if (wasReachable) this.log.warn({ event: 'etcd_unavailable', what: 'probe', err: errorMessage(err) }, 'etcd unreachable; forwarding with the last table');
      return;
    }
    await this.followConfig();
  }

  /**
   * Reads the network config and follows a change of its `encryption` (the
   * only setting weftd follows live; a change of any other, or a config that
   * no longer reads, is logged once: the node runs on with what it read at
   * start).
   */
  private async followConfig(): Promise<void> {
    const started = this.parts.config;
    let config: NetworkConfig | undefined;
    try {
      config = await this.seams.registry.getConfig();
    } catch (err) {
      if (isWeftError(err, 'WEFT_VALUE_INVALID') && this.configWarned !== err.message) {
        this.configWarned = err.message;
        this.log.warn({ event: 'config_invalid', err: err.message }, `${err.message}; running with the config read at start`);
      }
      return;
    }
    if (!config || !started || !this.encryption || this.stopController.signal.aborted) return;
    const others = (c: NetworkConfig): string => JSON.stringify([formatCidr(c.network), c.subnetLen, c.vni, c.port, c.wireguardPort]);
    if (others(config) !== others(started) && this.configWarned !== others(config)) {
      this.configWarned = others(config);
      this.log.warn({ event: 'config_changed_restart_needed' }, 'the network config changed in a setting other than encryption: restart weftd to apply it');
    }
    await this.encryption.follow(config.encryption);
  }

  /** The TUN's MTU and the subnet file's, changed together when encryption is turned on or off. */
  private async setMtu(b: Base, t: Tenure, device: DataplaneDevice, mtu: number): Promise<void> {
    await device.setMtu(mtu);
    if (this.parts.device) this.parts.device = { ...this.parts.device, mtu };
    this.log.info({ event: 'mtu_changed', mtu }, `TUN and pod MTU now ${mtu}`);
    if (this.tenure === t && this.state === 'running' && !t.lost) this.writeSubnetFile(b, t);
  }

  /**
   * Tells the service manager what the daemon does. The first call says
   * READY=1, forwarding or waiting for a subnet alike (a start that never
   * ended would be timed out and restarted), and starts feeding its
   * watchdog from the event loop for as long as the dataplane, if any,
   * forwards: a hung loop or a dead worker stops the keepalives, and
   * systemd restarts weftd.
   */
  private notifyStatus(status: string): void {
    const { notifier: sd, clock } = this.seams;
    if (!sd) return;
    if (this.readyNotified) {
      sd.notify({ STATUS: status });
      return;
    }
    this.readyNotified = true;
    sd.notify({ READY: 1, STATUS: status, MAINPID: process.pid });
    this.undo.push({ what: 'systemd notification', run: () => sd.notify({ STOPPING: 1, STATUS: 'stopping' }) });
    if (sd.watchdogIntervalMs === undefined) return;
    const watchdog = clock.setInterval(() => {
      const engine = this.parts.engine;
      if (!engine || engine.healthy()) sd.notify({ WATCHDOG: 1 });
      else this.log.error({ event: 'watchdog_withheld' }, 'dataplane not forwarding: withholding the systemd watchdog keepalive');
    }, sd.watchdogIntervalMs);
    this.undo.push({ what: 'systemd watchdog', run: () => clock.clearTimeout(watchdog) });
  }

  /** Logs the counters when they moved since the last log: a drop summary at most once per interval. */
  private logStats(): void {
    const counters = this.counters();
    if (!counters) return;
    const text = JSON.stringify(counters);
    if (text === this.lastStats) return;
    this.lastStats = text;
    this.log.info({ event: 'stats', counters }, 'dataplane counters');
  }

  /** What this node's lease offers peers: the native engine with vnet headers writes partial TCP checksums to its TUN. */
  private features(): string[] {
    return this.opts.engine === 'native' && this.opts.offload ? [FEATURE_TCP_CSUM_PARTIAL] : [];
  }

  private async runUndo(steps: Undo[]): Promise<void> {
    while (steps.length > 0) {
      const step = steps.pop()!;
      try {
        await step.run();
      } catch (err) {
        this.log.warn({ event: 'teardown_failed', what: step.what, err: errorMessage(err) }, `teardown of ${step.what} failed`);
      }
    }
  }

  private tearDown(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.tenure) {
        this.tenure.end(undefined);
        await this.release(this.tenure);
        this.tenure = undefined;
      }
      await this.runUndo(this.undo);
      this.log.info({ event: 'stopped' }, 'weftd stopped');
    })();
    return this.stopping;
  }
}
