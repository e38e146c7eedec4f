// The weft test lab: a cluster made of network namespaces that this run
// creates and deletes itself (its address plan and rules: docs/development.md, "The lab").
//
//   <prefix>-sw     bridge br0 (no address); every other namespace's eth0 has
//                   its veth peer here, enslaved to br0
//   <prefix>-etcd   eth0 198.18.0.254/24, runs etcd (client URL :2379); or,
//                   with etcdMembers: 3, <prefix>-e1..e3 at 198.18.0.251-.253,
//                   one member of a three-member cluster each (etcd.ts)
//   <prefix>-n<i>   node i, eth0 198.18.0.<i>/24, ip_forward=1, rp_filter=0,
//                   no default route; addPods() adds bridge cni0 here
//   <prefix>-n<i>p<k>  pod k of node i, eth0 on the node's cni0
//
// Nothing is added to the root namespace. All commands are bounded in time,
// every process is tracked by PID and stopped by PID, and destroy() (or, for
// an aborted run, the exit/SIGINT/SIGTERM handlers) deletes every namespace
// the run created; cleanup registered with addTeardown() (podman.ts) runs
// before anything else. stopEtcd() and startEtcd({ wipe }) take a single etcd
// down and bring it back (same address; its old data, or none) for fault
// tests; `etcd` (etcd.ts) does that per member of a cluster, and cuts a
// member off, heals it, and replaces it. Set
// WEFT_LAB_KEEP=1 to keep the run directory (logs, etcd data);
// WEFT_LAB_DEBUG=1 echoes the lab's own log to stderr.

import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { run, sleep, sleepSync, type ExecResult } from './exec.js';
import { addIp, blockSize, isNetworkAddress } from './ipv4.js';
import {
  addNamespace,
  cleanupStaleNamespaces,
  deleteNamespace,
  deleteNamespaceSync,
  ipIn,
  LAB_NS_RE,
  listNamespaces,
  pidAlive,
} from './netns.js';
import { ETCD_CLUSTER_IP_BASE, ETCD_IP, LabEtcd, etcdMembers } from './etcd.js';
import { LabProcessImpl, type LabProcess } from './process.js';

export type { LabProcess } from './process.js';
export type { ExecResult } from './exec.js';

export interface LabOptions {
  nodes: number;
  /** Test name, used in logs and error messages. */
  name?: string;
  /** 1 (default): one etcd at 198.18.0.254; 3: a cluster of three at .251-.253. */
  etcdMembers?: number;
}

export interface PodSubnet {
  /** Network address, e.g. 198.19.3.0 */
  network: string;
  /** e.g. 24 */
  prefixLen: number;
}

export interface LabExecOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  /** Return non-zero exit codes instead of throwing (a timeout still throws). */
  allowFail?: boolean;
  env?: Record<string, string>;
}

/** Cleanup the lab runs before it stops any process or deletes any namespace (see Lab.addTeardown). */
export interface TeardownHook {
  /** Awaited by destroy(); a rejection is reported by destroy() after the rest of the teardown. */
  destroy(): Promise<void>;
  /** Called by the exit/signal handlers; synchronous, must not throw. */
  destroySync(): void;
}

export const UNDERLAY_PREFIX_LEN = 24;
export { ETCD_IP };
export const UNDERLAY_MTU = 1500;
/** Underlay MTU - 36 (outer IPv4 20 + UDP 8 + VXLAN-GPE 8). */
export const DEFAULT_POD_MTU = UNDERLAY_MTU - 36;
/** Node addresses stop below the etcd cluster's (.251-.253) and the single etcd's (.254). */
const MAX_NODES = ETCD_CLUSTER_IP_BASE;
const TERM_GRACE_MS = 3000;
const KILL_GRACE_MS = 2000;

// ---------------------------------------------------------------------------
// Emergency cleanup: one set of process handlers shared by all live labs.

const liveLabs = new Set<Lab>();
let handlersInstalled = false;

function emergencyCleanup(): void {
  for (const lab of [...liveLabs]) lab.destroySync();
}
function onExit(): void {
  emergencyCleanup();
}
function onSignal(signal: NodeJS.Signals): void {
  emergencyCleanup();
  removeHandlers();
  // Re-raise: with our listener gone, the default action (or whoever else
  // listens) takes over.
  process.kill(process.pid, signal);
}
const onSigint = (): void => onSignal('SIGINT');
const onSigterm = (): void => onSignal('SIGTERM');

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', onExit);
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigterm);
}
function removeHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('exit', onExit);
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigterm);
}

/**
 * A run that died without cleanup (SIGKILL) leaves its directory behind; its
 * etcd WAL alone preallocates ~62 MB. Keep the logs, drop the etcd data.
 */
function pruneStaleEtcdData(deletedNamespaces: string[]): string[] {
  const notes: string[] = [];
  const prefixes = new Set(deletedNamespaces.map((n) => LAB_NS_RE.exec(n)?.[1]).filter((p): p is string => !!p));
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return notes;
  }
  for (const e of entries) {
    const m = /^weft-lab-(wl\d+[0-9a-f]{4})-/.exec(e);
    if (!m || !prefixes.has(m[1]!)) continue;
    const data = join(tmpdir(), e, 'etcd');
    try {
      if (existsSync(data)) {
        rmSync(data, { recursive: true, force: true });
        notes.push(`removed stale etcd data ${data} (logs kept in ${join(tmpdir(), e)})`);
      }
    } catch (err) {
      notes.push(`could not remove stale ${data}: ${(err as Error).message}`);
    }
  }
  return notes;
}

let setprivChecked: boolean | undefined;
async function hasSetprivPdeathsig(): Promise<boolean> {
  if (setprivChecked === undefined) {
    try {
      const r = await run('setpriv', ['--help'], { timeoutMs: 3000, allowFail: true });
      setprivChecked = r.code === 0 && r.stdout.includes('--pdeathsig');
    } catch {
      setprivChecked = false;
    }
  }
  return setprivChecked;
}

// ---------------------------------------------------------------------------

export class Lab {
  readonly prefix: string;
  readonly dir: string;
  readonly name: string;
  /** The lab's etcd members and their faults. */
  readonly etcd: LabEtcd;

  private readonly namespaces: string[] = [];
  private readonly procs = new Set<LabProcessImpl>();
  private readonly teardownHooks: TeardownHook[] = [];
  private readonly podIps = new Map<string, string>();
  private readonly nodePods = new Map<number, { subnet: PodSubnet; count: number }>();
  private nodes = 0;
  private logSeq = 0;
  private destroying: Promise<void> | undefined;
  private usePdeathsig = false;

  private constructor(prefix: string, dir: string, name: string, members: number) {
    this.prefix = prefix;
    this.dir = dir;
    this.name = name;
    this.etcd = new LabEtcd(
      {
        spawn: (ns, argv) => this.spawn(ns, argv) as LabProcessImpl,
        exec: (ns, argv, opts) => this.exec(ns, argv, opts),
        note: (...msgs) => this.note(...msgs),
      },
      etcdMembers(prefix, dir, members),
      `weft-lab-${prefix}`,
    );
  }

  static async create(opts: LabOptions): Promise<Lab> {
    const name = opts.name ?? 'lab';
    if (!Number.isInteger(opts.nodes) || opts.nodes < 0 || opts.nodes > MAX_NODES) {
      throw new Error(`Lab.create(${name}): nodes must be an integer in 0..${MAX_NODES}, got ${opts.nodes}`);
    }
    const members = opts.etcdMembers ?? 1;
    if (members !== 1 && members !== 3) throw new Error(`Lab.create(${name}): etcdMembers must be 1 or 3, got ${members}`);
    if (process.getuid?.() !== 0) {
      throw new Error(`Lab.create(${name}): needs root (creates network namespaces)`);
    }
    const stale = await cleanupStaleNamespaces();

    const existing = new Set(await listNamespaces());
    let prefix = '';
    for (let attempt = 0; attempt < 20; attempt++) {
      const p = `wl${process.pid % 10000}${randomBytes(2).toString('hex')}`;
      if (![...existing].some((n) => n.startsWith(`${p}-`))) {
        prefix = p;
        break;
      }
    }
    if (!prefix) throw new Error(`Lab.create(${name}): no free namespace prefix`);

    const dir = await mkdtemp(join(tmpdir(), `weft-lab-${prefix}-`));
    const lab = new Lab(prefix, dir, name, members);
    liveLabs.add(lab);
    installHandlers();
    lab.note(`lab "${name}" prefix ${prefix} dir ${dir} pid ${process.pid}`);
    if (stale.deleted.length) {
      lab.note(`deleted stale namespaces: ${stale.deleted.join(' ')}`);
      lab.note(...pruneStaleEtcdData(stale.deleted));
    }
    for (const e of stale.errors) lab.note(`stale cleanup (ignored): ${e}`);

    const t0 = Date.now();
    try {
      lab.usePdeathsig = await hasSetprivPdeathsig();
      await lab.build(opts.nodes);
    } catch (e) {
      const msg = (e as Error).message;
      try {
        await lab.destroy();
      } catch (d) {
        throw new Error(`Lab.create(${name}) failed: ${msg}\n(and cleanup failed: ${(d as Error).message})`, { cause: e });
      }
      throw new Error(`Lab.create(${name}) failed: ${msg}`, { cause: e });
    }
    lab.note(`lab ready in ${Date.now() - t0} ms`);
    return lab;
  }

  // ---- names and addresses -------------------------------------------------

  get switchNs(): string {
    return `${this.prefix}-sw`;
  }
  /** The single etcd's namespace (a cluster's members have their own: etcd.members). */
  get etcdNs(): string {
    return `${this.prefix}-etcd`;
  }
  /** etcd's client URLs, comma-separated, as --etcd-endpoints and etcdctl --endpoints take them. */
  get etcdEndpoint(): string {
    return this.etcd.endpoints;
  }
  /** The single etcd server process. */
  get etcdProcess(): LabProcess {
    return this.etcd.process(this.singleEtcd());
  }
  /** Number of nodes so far. */
  get nodeCount(): number {
    return this.nodes;
  }
  /** Every namespace this lab created and has not deleted yet. */
  get allNamespaces(): readonly string[] {
    return [...this.namespaces];
  }

  nodeNs(i: number): string {
    this.checkNode(i);
    return `${this.prefix}-n${i}`;
  }

  nodeIp(i: number): string {
    this.checkNode(i);
    return `198.18.0.${i}`;
  }

  podIp(podNs: string): string {
    const ip = this.podIps.get(podNs);
    if (!ip) throw new Error(`lab ${this.prefix}: ${podNs} is not a pod of this lab`);
    return ip;
  }

  // ---- running things ------------------------------------------------------

  async exec(ns: string, argv: string[], opts: LabExecOptions = {}): Promise<ExecResult> {
    this.checkNs(ns);
    if (argv.length === 0) throw new Error(`ns ${ns}: exec with an empty argv`);
    return run('ip', ['netns', 'exec', ns, ...argv], {
      context: `ns ${ns}`,
      timeoutMs: opts.timeoutMs ?? 10_000,
      allowFail: opts.allowFail ?? false,
      ...(opts.env ? { env: opts.env } : {}),
    });
  }

  /** etcdctl against every etcd member that runs and is not cut off. */
  async etcdctl(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<string> {
    return this.etcd.etcdctl(args, opts);
  }

  /** A tracked long-running process in `ns` (hostMounts: see SpawnOptions). */
  spawn(ns: string, argv: string[], opts: { env?: Record<string, string>; logFile?: string; hostMounts?: boolean } = {}): LabProcess {
    this.checkNs(ns);
    const seq = ++this.logSeq;
    const role = ns.slice(this.prefix.length + 1);
    const logFile = opts.logFile ?? join(this.dir, 'logs', `${role}-${basename(argv[0] ?? 'cmd')}-${seq}.log`);
    const p = new LabProcessImpl(ns, argv, {
      logFile,
      pdeathsig: this.usePdeathsig,
      ...(opts.hostMounts ? { hostMounts: true } : {}),
      ...(opts.env ? { env: opts.env } : {}),
    });
    this.procs.add(p);
    this.note(`spawned ${p.describe()}`);
    return p;
  }

  /**
   * The links on node i's CNI bridge cni0, one `ip -o link` line each; with `missingOk`, [] also when there
   * is no cni0 (yet), else that throws.
   */
  async bridgePorts(i: number, { missingOk = false }: { missingOk?: boolean } = {}): Promise<string[]> {
    const r = await this.exec(this.nodeNs(i), ['ip', '-o', 'link', 'show', 'master', 'cni0'], { allowFail: missingOk });
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** ping -c count (default 2) -W 1 -i 0.2 -w timeoutS (default 5); true if it succeeded. */
  async ping(fromNs: string, toIp: string, opts: { count?: number; timeoutS?: number } = {}): Promise<boolean> {
    const count = opts.count ?? 2;
    const timeoutS = opts.timeoutS ?? 5;
    const r = await this.exec(
      fromNs,
      ['ping', '-n', '-q', '-c', String(count), '-W', '1', '-i', '0.2', '-w', String(timeoutS), toIp],
      { timeoutMs: timeoutS * 1000 + 3000, allowFail: true },
    );
    if (r.code !== 0) this.note(`ping ${fromNs} -> ${toIp} failed (code ${r.code}): ${r.stdout.trim()} ${r.stderr.trim()}`);
    return r.code === 0;
  }

  // ---- etcd faults (a single etcd; a cluster's members: etcd.stop/start/partition/replace) ----

  /** True while the single etcd runs (between startEtcd/create and stopEtcd). */
  get etcdRunning(): boolean {
    return this.etcd.running(this.singleEtcd());
  }

  /**
   * Stops the single etcd: SIGTERM by PID, waits for it to exit (SIGKILL
   * after 5 s). Its data directory stays, for startEtcd(). Idempotent.
   */
  async stopEtcd(): Promise<{ code: number | null; signal: string | null }> {
    this.checkAlive();
    return this.etcd.stop(this.singleEtcd());
  }

  /**
   * Starts the single etcd again at the same address, on its old data
   * directory, or on an empty one with `wipe` (every key, lease and revision
   * gone); resolves once `etcdctl endpoint health` succeeds.
   */
  async startEtcd(opts: { wipe?: boolean } = {}): Promise<void> {
    this.checkAlive();
    await this.etcd.start(this.singleEtcd(), opts);
  }

  private singleEtcd(): 1 {
    if (this.etcd.members.length !== 1) throw new Error(`lab ${this.prefix}: etcd is a cluster of ${this.etcd.members.length}; use lab.etcd's per-member controls`);
    return 1;
  }

  // ---- topology ------------------------------------------------------------

  async addNode(): Promise<number> {
    this.checkAlive();
    if (this.nodes >= MAX_NODES) throw new Error(`lab ${this.prefix}: at most ${MAX_NODES} nodes`);
    const i = ++this.nodes;
    const ns = this.nodeNs(i);
    await this.newNs(ns);
    await this.attachToSwitch(ns, `p${i}`, `${this.nodeIp(i)}/${UNDERLAY_PREFIX_LEN}`);
    await this.exec(ns, [
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
    ]);
    this.note(`node ${i}: ns ${ns} ip ${this.nodeIp(i)}`);
    return i;
  }

  /**
   * Adds `count` pods to node `node`, on bridge cni0 (created on first use
   * with address network+1). Pod k (numbering continues across calls) gets
   * namespace `<prefix>-n<node>p<k>`, eth0 = network+1+k, default route via
   * network+1, and its veth (both ends) gets `mtu` (default 1464).
   */
  async addPods(node: number, count: number, subnet: PodSubnet, mtu: number = DEFAULT_POD_MTU): Promise<string[]> {
    this.checkAlive();
    this.checkNode(node);
    const nodeNs = this.nodeNs(node);
    if (!Number.isInteger(count) || count < 1) throw new Error(`ns ${nodeNs}: addPods count must be >= 1, got ${count}`);
    const { network, prefixLen } = subnet;
    if (!Number.isInteger(prefixLen) || prefixLen < 8 || prefixLen > 30) {
      throw new Error(`ns ${nodeNs}: bad pod prefix length ${prefixLen}`);
    }
    if (!isNetworkAddress(network, prefixLen)) throw new Error(`ns ${nodeNs}: ${network} is not a /${prefixLen} network address`);
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > UNDERLAY_MTU) throw new Error(`ns ${nodeNs}: bad pod MTU ${mtu}`);

    let state = this.nodePods.get(node);
    if (state && (state.subnet.network !== network || state.subnet.prefixLen !== prefixLen)) {
      throw new Error(
        `ns ${nodeNs}: cni0 already has ${state.subnet.network}/${state.subnet.prefixLen}, cannot add pods in ${network}/${prefixLen}`,
      );
    }
    const first = (state?.count ?? 0) + 1;
    const last = first + count - 1;
    // Highest usable host: network + size - 2 (size - 1 is broadcast).
    if (1 + last > blockSize(prefixLen) - 2) {
      throw new Error(`ns ${nodeNs}: ${network}/${prefixLen} has no room for pod ${last}`);
    }
    const gw = addIp(network, 1);
    if (!state) {
      await ipIn(nodeNs, ['link', 'add', 'cni0', 'type', 'bridge']);
      await ipIn(nodeNs, ['link', 'set', 'cni0', 'mtu', String(mtu), 'up']);
      await ipIn(nodeNs, ['addr', 'add', `${gw}/${prefixLen}`, 'dev', 'cni0']);
      state = { subnet: { network, prefixLen }, count: 0 };
      this.nodePods.set(node, state);
    }

    const names: string[] = [];
    for (let k = first; k <= last; k++) {
      const podNs = `${this.prefix}-n${node}p${k}`;
      const ip = addIp(network, 1 + k);
      const peer = `vp${k}`;
      await this.newNs(podNs);
      state.count = k;
      await ipIn(nodeNs, ['link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs]);
      await ipIn(nodeNs, ['link', 'set', peer, 'mtu', String(mtu), 'master', 'cni0', 'up']);
      await ipIn(podNs, ['link', 'set', 'lo', 'up']);
      await ipIn(podNs, ['link', 'set', 'eth0', 'mtu', String(mtu), 'up']);
      await ipIn(podNs, ['addr', 'add', `${ip}/${prefixLen}`, 'dev', 'eth0']);
      await ipIn(podNs, ['route', 'add', 'default', 'via', gw, 'dev', 'eth0']);
      this.podIps.set(podNs, ip);
      names.push(podNs);
      this.note(`pod ${podNs}: ${ip}/${prefixLen} via ${gw} mtu ${mtu} (peer ${peer} on ${nodeNs} cni0)`);
    }
    return names;
  }

  // ---- teardown ------------------------------------------------------------

  /**
   * Registers cleanup that needs the lab still whole: e.g. podman containers,
   * whose veth peers and CNI DEL live in a node namespace. Hooks run last
   * registered first, before processes are stopped and namespaces deleted.
   */
  addTeardown(hook: TeardownHook): void {
    this.checkAlive();
    this.teardownHooks.push(hook);
  }

  /** Idempotent. Stops tracked processes (SIGTERM, 3 s, SIGKILL), deletes the namespaces, removes dir unless WEFT_LAB_KEEP=1. */
  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: string[] = [];
    const t0 = Date.now();

    for (const h of [...this.teardownHooks].reverse()) {
      try {
        await h.destroy();
      } catch (e) {
        errors.push((e as Error).message);
      }
    }

    const alive = [...this.procs].filter((p) => !p.hasExited);
    // SIGCONT after SIGTERM: a process a test left stopped (SIGSTOP) handles its TERM too.
    for (const p of alive) {
      p.kill('SIGTERM');
      p.kill('SIGCONT');
    }
    const allExited = (ps: LabProcessImpl[]) => Promise.all(ps.map((p) => p.exited));
    await Promise.race([allExited(alive), sleep(TERM_GRACE_MS)]);
    const stubborn = alive.filter((p) => !p.hasExited);
    for (const p of stubborn) {
      this.note(`SIGKILL ${p.describe()} (no exit ${TERM_GRACE_MS} ms after SIGTERM)`);
      p.kill('SIGKILL');
    }
    if (stubborn.length) await Promise.race([allExited(stubborn), sleep(KILL_GRACE_MS)]);
    for (const p of stubborn) {
      if (!p.hasExited) errors.push(`${p.describe()} did not exit after SIGKILL`);
    }

    for (const ns of [...this.namespaces].reverse()) {
      try {
        await deleteNamespace(ns);
        this.namespaces.splice(this.namespaces.indexOf(ns), 1);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    try {
      const left = (await listNamespaces()).filter((n) => n.startsWith(`${this.prefix}-`));
      if (left.length) errors.push(`namespaces still present after destroy: ${left.join(' ')}`);
    } catch (e) {
      errors.push((e as Error).message);
    }

    this.note(`destroyed in ${Date.now() - t0} ms${errors.length ? ` with ${errors.length} error(s)` : ''}`);
    liveLabs.delete(this);
    if (liveLabs.size === 0) removeHandlers();

    if (process.env.WEFT_LAB_KEEP === '1') {
      process.stderr.write(`[lab ${this.name}] WEFT_LAB_KEEP=1: kept ${this.dir}\n`);
    } else {
      try {
        await rm(this.dir, { recursive: true, force: true });
      } catch (e) {
        errors.push(`rm -rf ${this.dir}: ${(e as Error).message}`);
      }
    }
    if (errors.length) throw new Error(`lab ${this.prefix} (${this.name}): destroy: ${errors.join('; ')}`);
  }

  /** @internal Synchronous emergency cleanup for exit/signal handlers. Never throws. */
  destroySync(): void {
    if (!liveLabs.has(this)) return;
    liveLabs.delete(this);
    this.destroying ??= Promise.resolve();
    for (const h of [...this.teardownHooks].reverse()) {
      try {
        h.destroySync();
      } catch {
        // best effort
      }
    }
    try {
      const alive = [...this.procs].filter((p) => !p.hasExited && pidAlive(p.pid));
      for (const p of alive) {
        p.kill('SIGTERM');
        p.kill('SIGCONT');
      }
      const deadline = Date.now() + 1000;
      while (Date.now() < deadline && alive.some((p) => pidAlive(p.pid))) sleepSync(20);
      for (const p of alive) if (pidAlive(p.pid)) p.kill('SIGKILL');
    } catch {
      // best effort
    }
    for (const ns of [...this.namespaces].reverse()) {
      if (deleteNamespaceSync(ns)) this.namespaces.splice(this.namespaces.indexOf(ns), 1);
    }
    if (process.env.WEFT_LAB_KEEP !== '1') {
      try {
        rmSync(this.dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  }

  // ---- internals -----------------------------------------------------------

  private async build(nodes: number): Promise<void> {
    const sw = this.switchNs;
    await this.newNs(sw);
    await ipIn(sw, ['link', 'set', 'lo', 'up']);
    await ipIn(sw, ['link', 'add', 'br0', 'mtu', String(UNDERLAY_MTU), 'type', 'bridge']);
    await ipIn(sw, ['link', 'set', 'br0', 'up']);

    for (const m of this.etcd.members) {
      await this.newNs(m.ns);
      await this.attachToSwitch(m.ns, `pe${m.index}`, `${m.ip}/${UNDERLAY_PREFIX_LEN}`);
    }

    // Build the nodes while etcd starts.
    const results = await Promise.allSettled([
      this.etcd.startAll(),
      (async () => {
        for (let i = 0; i < nodes; i++) await this.addNode();
      })(),
    ]);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  /** veth: `eth0` in `ns`, `peer` in the switch namespace on br0; MTU 1500; lo up. */
  private async attachToSwitch(ns: string, peer: string, cidr: string): Promise<void> {
    const sw = this.switchNs;
    await ipIn(sw, ['link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await ipIn(sw, ['link', 'set', peer, 'mtu', String(UNDERLAY_MTU), 'master', 'br0', 'up']);
    await ipIn(ns, ['link', 'set', 'lo', 'up']);
    await ipIn(ns, ['link', 'set', 'eth0', 'mtu', String(UNDERLAY_MTU), 'up']);
    await ipIn(ns, ['addr', 'add', cidr, 'dev', 'eth0']);
  }

  private async newNs(ns: string): Promise<void> {
    this.checkAlive();
    await addNamespace(ns);
    this.namespaces.push(ns);
  }

  private checkNode(i: number): void {
    if (!Number.isInteger(i) || i < 1 || i > this.nodes) {
      throw new Error(`lab ${this.prefix}: no node ${i} (nodes are 1..${this.nodes})`);
    }
  }

  private checkNs(ns: string): void {
    if (this.destroying) throw new Error(`lab ${this.prefix}: destroyed (ns ${ns})`);
    if (!this.namespaces.includes(ns)) throw new Error(`lab ${this.prefix}: ns ${ns} is not a namespace of this lab`);
  }

  private checkAlive(): void {
    if (this.destroying) throw new Error(`lab ${this.prefix}: destroyed`);
  }

  private note(...msgs: string[]): void {
    if (msgs.length === 0) return;
    const ts = new Date().toISOString();
    const line = msgs.map((m) => `${ts} [${this.name}] ${m}\n`).join('');
    try {
      if (existsSync(this.dir)) appendFileSync(join(this.dir, 'lab.log'), line);
    } catch {
      // logging must never fail the lab
    }
    if (process.env.WEFT_LAB_DEBUG === '1') process.stderr.write(line.replace(/^/gm, '[lab] ').replace(/\[lab\] $/, ''));
  }
}

