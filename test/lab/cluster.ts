// A weft cluster on the lab: weftctl init, one weftd per node namespace,
// pods on each node's bridge once its subnet is known. Shared by the e2e
// tests, the demo and the benchmarks.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Containerd } from './containerd.js';
import { Lab, type LabProcess } from './lab.js';
import { Podman } from './podman.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** weftd's bin (package.json "bin"): the bundle, whose #! line starts Node with the agent's flags. */
export const WEFTD = join(ROOT, 'dist/weftd.cjs');

/** Node's flags on the bin's #! line (#!/usr/bin/env -S node <flags>), which every way of starting weftd gets. */
export function weftdNodeFlags(): string[] {
  const shebang = /^#!\/usr\/bin\/env -S node (.+)$/m.exec(readFileSync(WEFTD, 'utf8').slice(0, 200));
  if (!shebang) throw new Error(`no #!/usr/bin/env -S node <flags> line at the top of ${WEFTD}`);
  return shebang[1]!.split(' ');
}

/**
 * The command that starts weftd (`bin`, this tree's by default) with `args`: the bin, as users start
 * it; for the js engine (the last --engine in args) `node <bin>`, without the bin's --jitless, as
 * docs/install.md says to run it.
 */
export function weftdCommand(args: readonly string[], bin = WEFTD): string[] {
  const engine = args.reduce<string | undefined>((e, a, k) => (a === '--engine' ? args[k + 1] : a.startsWith('--engine=') ? a.slice('--engine='.length) : e), undefined);
  return engine === 'js' ? [process.execPath, bin] : [bin];
}
export const WEFTCTL = join(ROOT, 'dist/cli/weftctl.js');
const TCP_TRANSFER = join(ROOT, 'test/e2e/fixtures/tcp_transfer.mjs');
export const POD_NETWORK = '198.19.0.0/16';
export const PREFIX = '/weft';

export interface ClusterOptions {
  nodes: number;
  podsPerNode: number;
  name: string;
  /** weftd's --engine, for all nodes or per node (default native, the product's default). */
  engine?: string | ((node: number) => string);
  /** Extra weftd flags for every node. */
  flags?: string[];
  /** The weftd bin, for all nodes or per node (default this tree's, WEFTD). */
  bin?: string | ((node: number) => string);
  /** false: only the lab and the network config; the test starts weftd itself (startNode). */
  startNodes?: boolean;
  /** The lab's etcd: 1 member (default) or a cluster of 3; weftd and weftctl get every member's endpoint. */
  etcdMembers?: number;
  /** Extra `weftctl init` flags (--encryption wireguard, say). */
  initFlags?: string[];
}

export interface NodeState {
  weftd: LabProcess | undefined;
  subnet: string | undefined;
  pods: string[];
  /** weftd's --metrics-addr inside the node's namespace; undefined when turned off. */
  metricsAddr?: string | undefined;
}

/** weftd's default --metrics-addr; each node's weftd has its own loopback, so they do not collide. */
export const METRICS_ADDR = '127.0.0.1:9474';

/** The --metrics-addr a weftd command line ends up with (the last flag wins, then WEFT_METRICS_ADDR); undefined when off. */
function metricsAddrOf(flags: readonly string[], fromEnv: string | undefined): string | undefined {
  let addr = fromEnv || METRICS_ADDR;
  flags.forEach((f, k) => {
    if (f === '--metrics-addr') addr = flags[k + 1] ?? addr;
    else if (f.startsWith('--metrics-addr=')) addr = f.slice('--metrics-addr='.length);
  });
  return addr === '' || addr === 'off' ? undefined : addr;
}

/** Fetches a URL with Node's http (no curl needed) and prints {code, body} as JSON. */
export const HTTP_GET_SCRIPT = `require('node:http').get(process.argv[1], (r) => { let b = ''; r.setEncoding('utf8'); r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(JSON.stringify({ code: r.statusCode, body: b }))); }).on('error', (e) => { process.stderr.write(e.message + '\\n'); process.exit(1); });`;

/** One line of weftd's JSON log. */
export interface LogEvent {
  event?: string;
  time: number;
  [k: string]: unknown;
}

/** The JSON log lines of a weftd from character `from` of its log() on (a mark: its log().length earlier). */
export function weftdEvents(p: LabProcess, from = 0): LogEvent[] {
  return p
    .log()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogEvent);
}

/** Where `weftctl cni install` put node i's plugin, conflist and state. */
export interface NodeCni {
  readonly network: string;
  readonly binDir: string;
  readonly confDir: string;
  readonly dataDir: string;
  readonly ipamDir: string;
}

export class WeftCluster {
  readonly nodes = new Map<number, NodeState>();
  private readonly podmans = new Map<number, Podman>();
  private readonly containerds = new Map<number, Containerd>();

  private constructor(
    readonly lab: Lab,
    private readonly opts: ClusterOptions,
  ) {}

  /** A lab with `nodes` nodes, a network config, weftd on every node and pods on each. */
  static async create(opts: ClusterOptions): Promise<WeftCluster> {
    const lab = await Lab.create({ nodes: Math.max(1, opts.nodes), name: opts.name, ...(opts.etcdMembers ? { etcdMembers: opts.etcdMembers } : {}) });
    const c = new WeftCluster(lab, opts);
    try {
      await c.weftctl(['init', '--network', POD_NETWORK, '--subnet-len', '24', ...(opts.initFlags ?? [])]);
      if (opts.startNodes !== false) await Promise.all(Array.from({ length: opts.nodes }, (_, k) => c.startNode(k + 1, opts.podsPerNode)));
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return c;
  }

  /** Runs weftctl from node 1's namespace (any node reaches etcd). */
  async weftctl(args: string[]): Promise<string> {
    const r = await this.lab.exec(this.lab.nodeNs(1), [process.execPath, WEFTCTL, '--etcd-endpoints', this.lab.etcdEndpoint, '--etcd-prefix', PREFIX, ...args]);
    return r.stdout;
  }

  nodeDir(i: number): string {
    return join(this.lab.dir, `n${i}`);
  }

  /** Starts weftd on node i (adding the node to the lab if new), waits until ready (20 s by default), then adds pods once. */
  async startNode(i: number, pods = 0, extraFlags: string[] = [], env?: Record<string, string>, readyTimeoutMs = 20_000): Promise<NodeState> {
    const proc = await this.launchNode(i, extraFlags, env);
    const state = this.nodes.get(i)!;
    const ready = JSON.parse(await proc.waitForLog(/"event":"ready"/, readyTimeoutMs)) as { subnet: string };
    state.subnet = ready.subnet;
    if (pods > 0 && state.pods.length === 0) {
      const [network, len] = ready.subnet.split('/');
      // The pods' MTU as the CNI plugin would give it: the subnet file's (lower with encryption).
      state.pods = await this.lab.addPods(i, pods, { network: network!, prefixLen: Number(len) }, Number(this.subnetEnv(i).FLANNEL_MTU));
    }
    return state;
  }

  /** Starts weftd on node i (adding the node to the lab if new), and returns it at once: for a weftd that is not expected to get ready soon. */
  async launchNode(i: number, extraFlags: string[] = [], env?: Record<string, string>): Promise<LabProcess> {
    while (this.lab.nodeCount < i) await this.lab.addNode();
    const state = this.nodes.get(i) ?? { weftd: undefined, subnet: undefined, pods: [] };
    this.nodes.set(i, state);
    const args = [
      '--etcd-endpoints', this.lab.etcdEndpoint,
      '--etcd-prefix', PREFIX,
      '--node-name', `node${i}`,
      '--iface', 'eth0',
      '--engine', this.engineOf(i),
      '--subnet-file', join(this.nodeDir(i), 'subnet.env'),
      '--state-dir', join(this.nodeDir(i), 'state'),
      '--stats-interval', '1',
      ...(this.opts.flags ?? []),
      ...extraFlags,
    ];
    const bin = typeof this.opts.bin === 'function' ? this.opts.bin(i) : (this.opts.bin ?? WEFTD);
    const proc = this.lab.spawn(this.lab.nodeNs(i), [...weftdCommand(args, bin), ...args], { logFile: join(this.lab.dir, 'logs', `weftd-node${i}.log`), ...(env ? { env } : {}) });
    state.weftd = proc;
    state.metricsAddr = metricsAddrOf([...(this.opts.flags ?? []), ...extraFlags], env?.WEFT_METRICS_ADDR);
    return proc;
  }

  /** Node i's CNI dirs; the network name is the run's own (podman's result cache in /var/lib/cni is shared). */
  cniOf(i: number): NodeCni {
    const d = join(this.nodeDir(i), 'cni');
    return { network: `weft-${this.lab.prefix}`, binDir: join(d, 'bin'), confDir: join(d, 'net.d'), dataDir: join(d, 'state'), ipamDir: join(d, 'ipam') };
  }

  /**
   * A podman on node i whose containers get their network from weft's
   * plugin, installed by `weftctl cni install` as an operator would (once per
   * node; the same Podman after that).
   */
  async podman(i: number): Promise<Podman> {
    const known = this.podmans.get(i);
    if (known) return known;
    const cni = await this.installCni(i);
    const p = await Podman.create(this.lab, i, { network: cni.network, confDir: cni.confDir, pluginDirs: [cni.binDir, '/usr/lib/cni'] });
    this.podmans.set(i, p);
    return p;
  }

  /** Installs weft's CNI plugin on node i with `weftctl cni install`, as an operator would; idempotent. */
  async installCni(i: number): Promise<NodeCni> {
    const cni = this.cniOf(i);
    await this.lab.exec(this.lab.nodeNs(i), [
      process.execPath, WEFTCTL, 'cni', 'install',
      '--bin-dir', cni.binDir,
      '--conf-dir', cni.confDir,
      '--network-name', cni.network,
      '--subnet-file', join(this.nodeDir(i), 'subnet.env'),
      '--data-dir', cni.dataDir,
      '--ipam-dir', cni.ipamDir,
    ]);
    return cni;
  }

  /** A containerd on node i whose CRI sandboxes get their network from weft's plugin, in the one bin_dir the install filled (the same Containerd after the first call). */
  async containerd(i: number): Promise<Containerd> {
    const known = this.containerds.get(i);
    if (known) return known;
    const cni = await this.installCni(i);
    const c = await Containerd.create(this.lab, i, { network: cni.network, confDir: cni.confDir, binDir: cni.binDir });
    this.containerds.set(i, c);
    return c;
  }

  engineOf(i: number): string {
    const e = this.opts.engine ?? 'native';
    return typeof e === 'function' ? e(i) : e;
  }

  /** Stops node i's weftd with `signal` and waits for it to exit. */
  async stopNode(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: string | null }> {
    const p = this.nodes.get(i)?.weftd;
    if (!p) throw new Error(`node ${i} runs no weftd`);
    p.kill(signal);
    const exit = await p.exitWithin(10_000);
    this.nodes.get(i)!.weftd = undefined;
    return exit;
  }

  subnetEnvText(i: number): string {
    return readFileSync(join(this.nodeDir(i), 'subnet.env'), 'utf8');
  }

  subnetEnv(i: number): Record<string, string> {
    return Object.fromEntries(this.subnetEnvText(i).trim().split('\n').map((l) => l.split('=') as [string, string]));
  }

  pods(): { node: number; ns: string; ip: string }[] {
    return [...this.nodes.entries()].flatMap(([node, s]) => s.pods.map((ns) => ({ node, ns, ip: this.lab.podIp(ns) })));
  }

  /** Every ordered pair of distinct nodes' first pods pings, once each (a few tries, `timeoutS` each, default 5); the pairs that failed. */
  async pingPairs(nodes: readonly number[], timeoutS = 5): Promise<string[]> {
    const firstPod = (i: number): string => {
      const ns = this.nodes.get(i)?.pods[0];
      if (!ns) throw new Error(`node ${i} has no pod`);
      return ns;
    };
    const failed: string[] = [];
    for (const a of nodes) {
      for (const b of nodes) {
        if (a !== b && !(await this.lab.ping(firstPod(a), this.lab.podIp(firstPod(b)), { count: 1, timeoutS }))) failed.push(`node${a} -> node${b}`);
      }
    }
    return failed;
  }

  /**
   * `bytes` of pseudo-random data over TCP from namespace `from` to `to` (a
   * pod, or any namespace at `o.toIp`), spread over `o.paceS` seconds when
   * given; what the sender and the receiver counted, as "<bytes> <sha256>"
   * each: equal when it arrived intact.
   */
  async transfer(from: string, to: string, bytes: number, o: { paceS?: number; port?: number; toIp?: string } = {}): Promise<{ sent: string; received: string }> {
    const port = o.port ?? 5001;
    const paceS = o.paceS;
    const sink = this.lab.spawn(to, [process.execPath, TCP_TRANSFER, 'sink', String(port)]);
    await sink.waitForLog(/listening/, 10_000);
    const args = [process.execPath, TCP_TRANSFER, 'send', o.toIp ?? this.lab.podIp(to), String(port), String(bytes), ...(paceS ? [String(paceS)] : [])];
    const sent = await this.lab.exec(from, args, { timeoutMs: 90_000 + (paceS ?? 0) * 1000 });
    const received = await sink.waitForLog(/^\d+ [0-9a-f]{64}$/, 30_000);
    return { sent: sent.stdout.trim(), received: received.trim() };
  }

  /** GET `path` from node i's weftd, inside the node's namespace. */
  async http(i: number, path: string): Promise<{ code: number; body: string }> {
    const addr = this.nodes.get(i)?.metricsAddr;
    if (!addr) throw new Error(`node ${i}: weftd serves no HTTP (--metrics-addr off)`);
    return this.httpGet(i, `http://${addr}${path}`);
  }

  /** GET any `url` from node i's namespace (Node's http: the host's busybox wget is static and crashes here). */
  async httpGet(i: number, url: string): Promise<{ code: number; body: string }> {
    const r = await this.lab.exec(this.lab.nodeNs(i), [process.execPath, '-e', HTTP_GET_SCRIPT, url]);
    return JSON.parse(r.stdout) as { code: number; body: string };
  }

  /**
   * Node i's counters after waiting `settleMs` for packets in flight: read
   * from weftd's /status (exact), or, with --metrics-addr off, the last
   * counters it logged (it logs them every second when they move).
   */
  async counters(i: number, settleMs?: number): Promise<Record<string, number>> {
    const viaHttp = this.nodes.get(i)?.metricsAddr !== undefined;
    await new Promise((r) => setTimeout(r, settleMs ?? (viaHttp ? 300 : 1500)));
    if (viaHttp) {
      const r = await this.http(i, '/status');
      if (r.code !== 200) throw new Error(`node ${i}: /status answered ${r.code}: ${r.body}`);
      return (JSON.parse(r.body) as { counters: Record<string, number> | null }).counters ?? {};
    }
    const lines = this.nodes.get(i)!.weftd!.log().split('\n').filter((l) => l.includes('"event":"stats"'));
    const last = lines.at(-1);
    return last ? (JSON.parse(last) as { counters: Record<string, number> }).counters : {};
  }

  destroy(): Promise<void> {
    return this.lab.destroy();
  }
}
