// A fleet of lease clients against a real etcd, as many weftd control planes
// would be: each client has the real LeaseManager (its own etcd lease),
// LeaseKeeper (its renewals) and LeaseWatcher (its own watch and route
// table); they share a few etcd connections, which real nodes would not.
// This file is the one place the scale bench and the scale test build the
// registry classes; runScale() is the scenario both run.

import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { PerformanceObserver } from 'node:perf_hooks';
import pino from 'pino';
import { systemClock } from '../../src/clock.js';
import { retryWhileEtcdDown } from '../../src/daemon/retry.js';
import { isWeftError } from '../../src/errors.js';
import { type Cidr, formatCidr, formatIp, parseCidr, parseIp } from '../../src/net/ipv4.js';
import { LeaseKeeper } from '../../src/registry/lease_keeper.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import { LeaseWatcher } from '../../src/registry/lease_watcher.js';
import { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import type { NetworkConfig } from '../../src/registry/schema.js';
import { NO_PEER, type RouteTable } from '../../src/routes/route_table.js';
import { sleep } from './until.js';
import { median, percentile } from './stats.js';

export interface FleetOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly config: NetworkConfig;
  readonly ttlS: number;
  readonly resyncIntervalMs: number;
  /** etcd connections the clients share (round robin). */
  readonly connections: number;
}

export interface FleetClient {
  readonly name: string;
  readonly ip: string;
  readonly subnet: Cidr;
  /** The last table its watcher published (undefined before the first). */
  readonly table: RouteTable | undefined;
  /** What went wrong for it (a fatal error, its key deleted or taken); empty when all is well. */
  readonly problems: readonly string[];
}

interface Client extends FleetClient {
  table: RouteTable | undefined;
  readonly problems: string[];
  readonly manager: LeaseManager;
  readonly keeper: LeaseKeeper;
  readonly watcher: LeaseWatcher;
}

const silent = pino({ level: 'silent' });
/**
 * The clients share one process, so a call's deadline would time this
 * process's queue of work for a thousand clients rather than etcd: at
 * weftd's 5 s, a mass join here turns into timeouts and re-lists that feed
 * on themselves. Each weftd has its own CPU and keeps the 5 s.
 */
const FLEET_CALL_TIMEOUT_MS = 60_000;

export class LeaseFleet {
  /** The clients that have joined and not left. */
  readonly live = new Map<string, FleetClient>();
  /** Called with every table a client's watcher publishes, as it publishes it. */
  onTable: ((c: FleetClient, t: RouteTable) => void) | undefined;
  private readonly regs: EtcdRegistry[];
  private readonly all = new Set<Client>();
  private readonly stopping = new AbortController();
  private seq = 0;
  /** Calls a join retried because etcd did not answer (as weftd retries them), by the first 100 characters of the error. */
  readonly retries = new Map<string, number>();

  constructor(private readonly o: FleetOptions) {
    if (!Number.isInteger(o.connections) || o.connections < 1) throw new Error(`lease fleet: connections must be an integer >= 1, got ${o.connections}`);
    this.regs = Array.from({ length: o.connections }, () => new EtcdRegistry({ endpoints: o.endpoints, prefix: o.prefix, callTimeoutMs: FLEET_CALL_TIMEOUT_MS }));
    // Every join waiting out a retry listens on it: a thousand at once is the point, not a leak.
    setMaxListeners(0, this.stopping.signal);
  }

  /** A registry of the fleet's, for reading what etcd holds. */
  get registry(): EtcdRegistry {
    return this.regs[0]!;
  }

  /**
   * Leases a subnet for `name` and starts its renewals and its watch,
   * retrying while etcd does not answer, as weftd does; resolves once its
   * first table is published, rejects once the fleet is aborted.
   */
  async join(name: string, ip: string): Promise<FleetClient> {
    if (this.live.has(name)) throw new Error(`lease fleet: ${name} has already joined`);
    const reg = this.regs[this.seq++ % this.regs.length]!;
    const instance = randomBytes(6).toString('hex');
    const { config, ttlS } = this.o;
    const manager = new LeaseManager({
      registry: reg,
      config,
      value: { nodeName: name, publicIp: ip, port: config.port, vni: config.vni, version: 'fleet', engine: 'js', instance },
      ttlS,
      stateDir: undefined,
      log: silent,
      clock: systemClock,
    });
    const rec = await this.retrying('acquire a subnet lease', () => manager.acquire());
    if (this.stopping.signal.aborted) {
      // Stopped while this lease was being written: give it back rather than start a client no one will stop.
      await manager.release(rec).catch(() => undefined);
      throw this.stopping.signal.reason;
    }
    const problems: string[] = [];
    const keeper = new LeaseKeeper({ manager, initial: rec, ttlS, log: silent, events: { onLost: (err) => problems.push(`fatal: ${err.message}`) }, clock: systemClock });
    const client: Client = {
      name,
      ip,
      subnet: rec.subnet,
      table: undefined,
      problems,
      manager,
      keeper,
      watcher: new LeaseWatcher({
        registry: reg,
        config,
        self: rec.subnet,
        nodeName: name,
        instance,
        publicIp: parseIp(ip),
        log: silent,
        resyncIntervalMs: this.o.resyncIntervalMs,
        clock: systemClock,
        events: {
          onTable: (t) => {
            client.table = t;
            this.onTable?.(client, t);
          },
          onSelfDeleted: () => {
            problems.push('its own key was deleted');
            keeper.lostNow('its own key was deleted');
          },
          onSelfTaken: (r) => problems.push(`its subnet was taken by ${r.lease.nodeName}`),
        },
      }),
    };
    this.all.add(client);
    keeper.start();
    await this.retrying('list leases', () => client.watcher.start());
    this.live.set(name, client);
    return client;
  }

  /** Stops `name`'s watch and renewals and gives its subnet back. */
  async leave(name: string): Promise<void> {
    const c = this.live.get(name) as Client | undefined;
    if (!c) throw new Error(`lease fleet: ${name} is not live`);
    this.live.delete(name);
    await this.stop(c);
    await c.manager.release(c.keeper.record);
    this.all.delete(c);
  }

  /**
   * The live clients whose table is not exactly the other live clients'
   * leases (subnet, node, address, port), each with what is missing and extra.
   */
  mismatches(): string[] {
    const want = new Map<number, string>();
    for (const c of this.live.values()) want.set(c.subnet.base, `${c.name} ${c.ip}:${this.o.config.port}`);
    const out: string[] = [];
    for (const c of this.live.values()) {
      const got = new Map((c.table?.peers ?? []).map((p) => [p.subnet.base, `${p.node} ${formatIp(p.ip)}:${p.port}`] as const));
      const missing = [...want].filter(([base, v]) => base !== c.subnet.base && got.get(base) !== v).length;
      const extra = [...got.keys()].filter((base) => !want.has(base)).length;
      if (missing || extra) out.push(`${c.name}: ${missing} missing, ${extra} extra`);
    }
    return out;
  }

  /** Subnets held by more than one live client, and clients that hold more than one key in etcd. */
  async doubles(): Promise<string[]> {
    const out: string[] = [];
    const holder = new Map<number, string>();
    for (const c of this.live.values()) {
      const other = holder.get(c.subnet.base);
      if (other) out.push(`${formatCidr(c.subnet)} held by ${other} and ${c.name}`);
      holder.set(c.subnet.base, c.name);
    }
    const keys = new Map<string, string[]>();
    for (const r of (await this.registry.listLeases()).records) keys.set(r.lease.nodeName, [...(keys.get(r.lease.nodeName) ?? []), formatCidr(r.subnet)]);
    for (const [n, ss] of keys) if (ss.length > 1) out.push(`${n} holds ${ss.join(' and ')} in etcd`);
    return out;
  }

  /** Makes every join in progress reject with `reason`. */
  abort(reason: Error): void {
    this.stopping.abort(reason);
  }

  /** Stops every client, gives every subnet back, closes the connections. Never throws. */
  async close(): Promise<void> {
    this.abort(new Error('lease fleet closed'));
    const clients = [...this.all];
    this.live.clear();
    await Promise.allSettled(clients.map((c) => this.stop(c)));
    await Promise.allSettled(clients.map((c) => c.manager.release(c.keeper.record)));
    this.all.clear();
    for (const r of this.regs) r.close();
  }

  private retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const { signal } = this.stopping;
    return retryWhileEtcdDown(
      what,
      async () => {
        try {
          return await fn();
        } catch (err) {
          if (isWeftError(err, 'WEFT_ETCD_UNAVAILABLE')) {
            const why = err.message.replace(/^etcd \S+: /, '').slice(0, 100);
            this.retries.set(why, (this.retries.get(why) ?? 0) + 1);
          }
          throw err;
        }
      },
      silent,
      signal,
      systemClock,
    ).catch((err: unknown) => {
      // An abort while waiting to retry surfaces as a bare AbortError: say why instead.
      throw signal.aborted ? signal.reason : err;
    });
  }

  private async stop(c: Client): Promise<void> {
    c.keeper.stop();
    await c.watcher.close();
  }
}

export interface ScaleOptions extends Omit<FleetOptions, 'config'> {
  readonly clients: number;
  /** Changes (one client leaving and a new one joining at once) to time after convergence. */
  readonly changes: number;
  /** How long the joins may take, retries included. */
  readonly joinTimeoutMs: number;
  /** How long every table may take to equal the live leases after the last join. */
  readonly convergeTimeoutMs: number;
  /** How long a change may take to reach every client. */
  readonly changeTimeoutMs: number;
}

export interface ScaleResult {
  readonly clients: number;
  readonly network: string;
  /** From the first join's start to the last join's first table. */
  readonly joinMs: number;
  /** etcd calls the joins retried after a timeout (60 s here) or a refusal (weftd's backoff: 1 s, 2 s, 4 s ...), by error. */
  readonly joinRetries: Readonly<Record<string, number>>;
  /** From the last join to every table equal to the live leases; null if that did not happen in time. */
  readonly convergeMs: number | null;
  /** What was still wrong when convergence timed out. */
  readonly unconverged: readonly string[];
  readonly doubles: readonly string[];
  readonly problems: readonly string[];
  /** Per client per change: ms from the start of the change until its table showed both halves. */
  readonly propagation: {
    readonly samples: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly maxMs: number;
    readonly unseen: number;
    /**
     * Median over the changes of this process's CPU (every client's share of
     * one change, in one Node thread) and wall time from the change's start
     * until the last client saw it: when the two are close, the clients'
     * shared thread, not etcd, bounds propagation.
     */
    readonly cpuMsPerChange: number;
    readonly wallMsPerChange: number;
    /** Median over the changes of the time this process's main thread spent paused for garbage collection (its heap holds every client's leases and tables). */
    readonly gcMsPerChange: number;
  };
  /**
   * Per client: process memory grown by the joins (each client holds one
   * lease, one watch, one table of every other) and this process's CPU
   * from the first join to convergence (what one node's control plane
   * spends on a mass join, all clients sharing this process's CPUs).
   */
  readonly perClient: { readonly rssKiB: number; readonly heapKiB: number; readonly cpuMs: number };
}

/** A subnet length that leaves about four free subnets per client in 198.19.0.0/16 (fewer CAS conflicts as the fleet fills). */
export function fleetNetwork(clients: number): NetworkConfig {
  const network = parseCidr('198.19.0.0/16');
  const bits = Math.min(14, Math.max(4, Math.ceil(Math.log2(clients * 4))));
  return { network, subnetLen: 16 + bits, vni: 1, port: 4790, encryption: 'off', wireguardPort: 51820 };
}

const ipOf = (k: number): string => `198.18.${1 + Math.floor(k / 250)}.${(k % 250) + 1}`;

/**
 * `clients` clients join at once; then, while no subnet may be held twice,
 * every table must come to equal the live leases; then `changes` times one
 * client leaves as a new one joins, and every other client's time to see
 * both is taken. Bounded: every wait has its timeout; the fleet is closed on
 * every path.
 */
export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const config = fleetNetwork(o.clients + o.changes);
  const fleet = new LeaseFleet({ ...o, config });
  const doubles: string[] = [];
  try {
    const mem0 = process.memoryUsage();
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        doubles.push(...(await fleet.doubles().catch(() => [])));
        await sleep(250);
      }
    })();
    let joined: FleetClient[];
    const late = setTimeout(() => fleet.abort(new Error(`${o.clients} clients did not all join within ${o.joinTimeoutMs} ms (${fleet.live.size} did)`)), o.joinTimeoutMs);
    try {
      joined = await Promise.all(Array.from({ length: o.clients }, (_, k) => fleet.join(`c${k}`, ipOf(k))));
    } finally {
      clearTimeout(late);
      sampling = false;
      await sampler;
    }
    const joinMs = Date.now() - t0;

    const tJoined = Date.now();
    let convergeMs: number | null = null;
    let wrong: string[] = [];
    while (Date.now() - tJoined < o.convergeTimeoutMs) {
      wrong = fleet.mismatches();
      if (wrong.length === 0) {
        convergeMs = Date.now() - tJoined;
        break;
      }
      await sleep(100);
    }
    const mem1 = process.memoryUsage();
    const cpu1 = process.cpuUsage(cpu0);
    doubles.push(...(await fleet.doubles()));

    const samples: number[] = [];
    const changeCpuMs: number[] = [];
    const changeWallMs: number[] = [];
    const changeGcMs: number[] = [];
    let gcMs = 0;
    const gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcMs += e.duration;
    });
    gc.observe({ entryTypes: ['gc'] });
    let unseen = 0;
    for (let k = 0; k < o.changes && convergeMs !== null; k++) {
      const leaver = joined[k]!;
      const newcomer = `n${k}`;
      const newcomerIp = parseIp(ipOf(o.clients + k));
      const pending = new Map<string, { left: boolean; came: boolean }>();
      for (const c of fleet.live.values()) if (c.name !== leaver.name) pending.set(c.name, { left: false, came: false });
      const start = Date.now();
      const cpuAtStart = process.cpuUsage();
      const gcAtStart = gcMs;
      const seen: number[] = [];
      fleet.onTable = (c, t) => {
        const p = pending.get(c.name);
        if (!p) return;
        const at = t.lookup(leaver.subnet.base);
        p.left ||= at === NO_PEER || t.peers[at]!.node !== leaver.name;
        // By its address in the flat array: reading every peer object of 1,000 tables would cost this process more than the change.
        p.came ||= t.arrays().peerIp.includes(newcomerIp);
        if (p.left && p.came) {
          pending.delete(c.name);
          seen.push(Date.now() - start);
        }
      };
      await Promise.all([fleet.leave(leaver.name), fleet.join(newcomer, formatIp(newcomerIp))]);
      pending.delete(newcomer);
      const deadline = start + o.changeTimeoutMs;
      while (pending.size > 0 && Date.now() < deadline) await sleep(20);
      const cpu = process.cpuUsage(cpuAtStart);
      changeCpuMs.push((cpu.user + cpu.system) / 1000);
      changeWallMs.push(Date.now() - start);
      changeGcMs.push(gcMs - gcAtStart);
      fleet.onTable = undefined;
      unseen += pending.size;
      samples.push(...seen);
    }
    gc.disconnect();
    samples.sort((a, b) => a - b);
    const problems = [...fleet.live.values()].flatMap((c) => c.problems.map((p) => `${c.name}: ${p}`));
    doubles.push(...(await fleet.doubles()));
    return {
      clients: o.clients,
      network: `${formatCidr(config.network)} in /${config.subnetLen}`,
      joinMs,
      joinRetries: Object.fromEntries(fleet.retries),
      convergeMs,
      unconverged: convergeMs === null ? wrong.slice(0, 10) : [],
      doubles: [...new Set(doubles)],
      problems,
      propagation: {
        samples: samples.length,
        p50Ms: percentile(samples, 50),
        p99Ms: percentile(samples, 99),
        maxMs: samples.at(-1) ?? NaN,
        unseen,
        cpuMsPerChange: Math.round(median(changeCpuMs)),
        wallMsPerChange: Math.round(median(changeWallMs)),
        gcMsPerChange: Math.round(median(changeGcMs)),
      },
      perClient: { rssKiB: Math.round((mem1.rss - mem0.rss) / 1024 / o.clients), heapKiB: Math.round((mem1.heapUsed - mem0.heapUsed) / 1024 / o.clients), cpuMs: Math.round((cpu1.user + cpu1.system) / 1000 / o.clients) },
    };
  } finally {
    await fleet.close();
  }
}
