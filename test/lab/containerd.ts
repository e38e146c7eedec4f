// Debian's containerd 1.6 as a lab node's container runtime, driven over CRI
// as kubelet drives it. Owns the node's containerd config, root, state and
// sockets (all under <lab.dir>/n<i>/containerd), the containerd process, and
// what it starts: shims, sandbox and container processes, their mounts
// (netns pins, rootfs, shm), cgroups and CNI result-cache files.
//
// containerd runs as `nsenter --net=/run/netns/<node> containerd --config`
// (a lab process with hostMounts): its shims, runc and the CNI plugins share
// the root mount namespace, so the lab sees and can unmount what they mount,
// and the pods' bridge, veths and portmap's rules land in the node.
// Contracts:
//   - one Containerd per lab node; its CRI plugin loads the conflists of
//     `confDir` and runs plugins from `binDir`, one directory, as containerd
//     1.x has it;
//   - sandboxes run the lab's busybox image (rootfs.ts), imported with `ctr`
//     before the first one: nothing is ever pulled;
//   - its pods' cgroups sit under /weft-<lab prefix>-n<i> in every hierarchy
//     (kubelet sets a cgroup parent too), so what they run is found by PID;
//   - destroy() stops and removes every sandbox through CRI (CNI DEL, as
//     kubelet would) while the node and its weftd still exist, stops
//     containerd by PID, then removes whatever CRI could not: shims (found by
//     their -address, this instance's socket) and pod processes SIGKILLed by
//     PID, mounts under its dir unmounted, cgroups removed, CNI result files
//     of its sandboxes, its dir, and /run/containerd (where shims put their
//     sockets) if a lab run created it and no containerd uses it any more.
//     destroySync() does the second half for the exit/signal handlers;
//   - create() first does that second half for the instances of lab runs
//     that died without cleanup (SIGKILL), found by their lab dir in the
//     argv of the shims and containerd they left (only once the PID in that
//     lab's lab.log is gone).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CriClient, type PodSandboxConfig, type PortMapping } from '../harness/cri_client.js';
import { until } from '../harness/until.js';
import { run, runSync, sleepSync, type ExecResult } from './exec.js';
import type { Lab, LabProcess, TeardownHook } from './lab.js';
import { cniResultFiles, removeCniResultFiles } from './cni_results.js';
import { livePids, mountsUnder, pidAlive } from './netns.js';
import { SANDBOX_IMAGE, sandboxImage } from './rootfs.js';

export interface ContainerdOptions {
  /** CRI `bin_dir`: the ONE directory containerd 1.x runs CNI plugins (and loopback) from. */
  binDir: string;
  /** CRI `conf_dir`: where it loads the node's conflist. */
  confDir: string;
  /** The conflist's network name: its result-cache files are `/var/lib/cni/results/<network>-<id>-eth0`. */
  network: string;
}

export interface SandboxOptions {
  portMappings?: PortMapping[];
  /** RunPodSandbox's deadline; default 60 s. */
  timeoutMs?: number;
}

export interface Sandbox {
  readonly id: string;
  readonly name: string;
  /** PodSandboxStatus's network.ip: the address CNI gave eth0. */
  readonly ip: string;
  /** The pod's network namespace, pinned by containerd under its state dir. */
  readonly netns: string;
  /** The sandbox (pause) process's host PID. */
  readonly pid: number;
  readonly config: PodSandboxConfig;
}

/** The parts of containerd 1.6's verbose PodSandboxStatus info ("info" key) this file reads. */
interface SandboxInfo {
  pid?: number;
  runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
}

const CONTAINERD = '/usr/bin/containerd';
const CRI_NAMESPACE = 'k8s.io';
/** Where containerd 1.6's shims put their sockets (`s/`), whatever the config says. */
const RUN_DIR = '/run/containerd';
const SHIM_SOCKET_DIR = join(RUN_DIR, 's');
/** Left in /run/containerd when a lab run made it: the last run to finish, with no containerd left, removes the dir. */
const RUN_MARKER = join(RUN_DIR, '.weft-lab');
const STOP_GRACE_MS = 10_000;
const KILL_WAIT_MS = 3000;

/** Dirs of the live instances: one Containerd per lab node. */
const liveDirs = new Set<string>();
/** Makes /run/containerd, marked as the lab's, unless it is there (a system containerd's, or another lab run's). */
function claimRunDir(): void {
  try {
    mkdirSync(RUN_DIR, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw e;
  }
  writeFileSync(RUN_MARKER, `made by a weft test lab (pid ${process.pid}); removed by the last one once no containerd runs\n`);
}

/** Removes /run/containerd if a lab run made it, no containerd or shim runs, and nothing but the lab's empty dirs is in it. */
function releaseRunDir(): void {
  if (!existsSync(RUN_MARKER) || runtimeProcesses().length > 0) return;
  try {
    rmdirSync(SHIM_SOCKET_DIR); // only when empty
  } catch {
    // absent or in use
  }
  try {
    if (readdirSync(RUN_DIR).every((f) => join(RUN_DIR, f) === RUN_MARKER)) {
      rmSync(RUN_MARKER, { force: true });
      rmdirSync(RUN_DIR);
    }
  } catch {
    // another run took it meanwhile
  }
}

/** `s` as a TOML basic string (JSON's escapes are TOML's). */
const toml = (s: string): string => JSON.stringify(s);

/** A shim process: its PID and the socket it serves its task API on. */
interface Shim {
  readonly pid: number;
  readonly socket: string;
}

/** Where containerd 1.6 puts the socket of the shim of task `id` in `namespace` for the containerd at `address` (shim.SocketAddress). */
function shimSocket(address: string, namespace: string, id: string): string {
  return join(SHIM_SOCKET_DIR, createHash('sha256').update(join(address, namespace, id)).digest('hex'));
}

/** Running processes whose argv[0] is containerd or one of its shims (this run's or not). */
function runtimeProcesses(): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const pid of livePids()) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)containerd(-shim[^/]*)?$/.test(argv[0] ?? '') && pidAlive(pid)) found.push({ pid, argv });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The shims serving the containerd at `address`: what it started for this instance. */
function shimsOf(address: string): Shim[] {
  return runtimeProcesses().flatMap(({ pid, argv }) => {
    const flag = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
    if (!argv[0]!.includes('containerd-shim') || flag('-address') !== address) return [];
    return [{ pid, socket: shimSocket(address, flag('-namespace') ?? CRI_NAMESPACE, flag('-id') ?? '') }];
  });
}

/** Every directory named `name` at the top of a cgroup hierarchy (v1: one per controller; v2: the root). */
function cgroupDirs(name: string): string[] {
  const roots = ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h))];
  return roots.map((r) => join(r, name)).filter((d) => existsSync(join(d, 'cgroup.procs')));
}

/** `dir` and every cgroup below it, leaves first. */
function cgroupTree(dir: string): string[] {
  const below = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
  return [...below.flatMap((e) => cgroupTree(join(dir, e.name))), dir];
}

function procsOf(cgroup: string): number[] {
  try {
    return readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killAndWait(pids: readonly number[]): number[] {
  const alive = pids.filter(pidAlive);
  for (const pid of alive) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + KILL_WAIT_MS;
  while (Date.now() < deadline && alive.some(pidAlive)) sleepSync(20);
  return alive.filter(pidAlive);
}

/** What one instance leaves on the machine, known from its dir: its socket, its pods' cgroup parent, its sandbox ids. */
interface Footprint {
  readonly dir: string;
  readonly socket: string;
  readonly cgroupParent: string;
  readonly sandboxIds: readonly string[];
}

const socketOf = (dir: string): string => join(dir, 'containerd.sock');

/** Sandbox ids in the CRI store under containerd dir `dir` (those created by a call that did not return, too). */
function storedSandboxIds(dir: string): string[] {
  try {
    return readdirSync(join(dir, 'root', 'io.containerd.grpc.v1.cri', 'sandboxes')).filter((e) => /^[0-9a-f]{64}$/.test(e));
  } catch {
    return [];
  }
}

function podPidsOf(cgroupParent: string): number[] {
  return [...new Set(cgroupDirs(cgroupParent).flatMap((d) => cgroupTree(d).flatMap(procsOf)))];
}

/**
 * With its containerd stopped: SIGKILLs the shims and pod processes by PID,
 * removes the shims' sockets, unmounts what is mounted under the dir,
 * removes the pod cgroups, the CNI result files and the dir. Returns what it
 * could not do.
 */
function removeFootprint(f: Footprint): string[] {
  const errors: string[] = [];
  const ids = new Set([...f.sandboxIds, ...storedSandboxIds(f.dir)]);
  const results = cniResultFiles({ ids });
  const shims = shimsOf(f.socket);
  const stuck = killAndWait([...shims.map((s) => s.pid), ...podPidsOf(f.cgroupParent)]);
  if (stuck.length) errors.push(`pids ${stuck.join(' ')} did not die on SIGKILL`);
  // A killed shim leaves its socket; the name hashes this instance's address, so it is no one else's.
  for (const sock of new Set([...shims.map((s) => s.socket), ...[...ids].map((id) => shimSocket(f.socket, CRI_NAMESPACE, id))])) rmSync(sock, { force: true });
  for (const m of mountsUnder(f.dir).reverse()) {
    if (!runSync('umount', [m]) && !runSync('umount', ['-l', m])) errors.push(`cannot unmount ${m}`);
  }
  for (const top of cgroupDirs(f.cgroupParent)) {
    for (const cg of cgroupTree(top)) {
      try {
        rmdirSync(cg);
      } catch (e) {
        errors.push(`cannot remove cgroup ${cg}: ${(e as Error).message}`);
      }
    }
  }
  removeCniResultFiles(results);
  try {
    rmSync(f.dir, { recursive: true, force: true });
  } catch (e) {
    errors.push(`rm -rf ${f.dir}: ${(e as Error).message}`);
  }
  releaseRunDir();
  return errors;
}

/** A containerd dir of a lab run, as its socket or config path names it: the lab dir, the run's prefix and the node. */
const LAB_CONTAINERD_DIR_RE = /^((.*\/weft-lab-(wl\d+[0-9a-f]{4})-[^/]+)\/n(\d+)\/containerd)\/(?:containerd\.sock|config\.toml)$/;

/** Whether the process that made lab dir `labDir` runs: its PID is on lab.log's first line. Unknown counts as running. */
function labOwnerRuns(labDir: string): boolean {
  try {
    const pid = / pid (\d+)$/m.exec(readFileSync(join(labDir, 'lab.log'), 'utf8').split('\n')[0] ?? '')?.[1];
    return pid === undefined || pidAlive(Number(pid));
  } catch {
    return true;
  }
}

/**
 * What lab runs that died without cleanup (SIGKILL) left running: their
 * containerd (if it outlived its pdeathsig) and shims, found by the lab dir
 * in their --config or -address, and from those the rest of the footprint.
 * Only runs whose owner is known and gone are touched.
 */
function sweepStaleRuns(): void {
  const stale = new Map<string, Footprint>();
  const daemons: number[] = [];
  for (const { pid, argv } of runtimeProcesses()) {
    const path = argv[argv.indexOf(argv.includes('-address') ? '-address' : '--config') + 1] ?? '';
    const m = LAB_CONTAINERD_DIR_RE.exec(path);
    if (!m || labOwnerRuns(m[2]!)) continue;
    stale.set(m[1]!, { dir: m[1]!, socket: socketOf(m[1]!), cgroupParent: `/weft-${m[3]}-n${m[4]}`, sandboxIds: [] });
    if (!argv.includes('-address')) daemons.push(pid);
  }
  killAndWait(daemons);
  for (const f of stale.values()) removeFootprint(f);
}

export class Containerd implements TeardownHook {
  /** `<lab.dir>/n<i>/containerd`: config.toml, root/, state/, opt/, runc/, pods/ and the sockets. */
  readonly dir: string;
  readonly ns: string;
  readonly socket: string;
  /** The pods' cgroup parent, e.g. /weft-wl1234abcd-n1. */
  readonly cgroupParent: string;
  readonly network: string;
  readonly cri: CriClient;
  private proc: LabProcess | undefined;
  private procExited = true;
  /** Every sandbox id this instance's CRI ever returned, for its CNI result files. */
  private readonly sandboxIds = new Set<string>();
  private destroying: Promise<void> | undefined;

  private constructor(
    private readonly lab: Lab,
    readonly node: number,
    private readonly opts: ContainerdOptions,
  ) {
    this.ns = lab.nodeNs(node);
    this.dir = join(lab.dir, `n${node}`, 'containerd');
    this.socket = socketOf(this.dir);
    this.cgroupParent = `/weft-${lab.prefix}-n${node}`;
    this.network = opts.network;
    this.cri = new CriClient(this.socket);
  }

  /** Writes the config, starts containerd in node `node`'s network namespace, and imports the sandbox image. */
  static async create(lab: Lab, node: number, opts: ContainerdOptions): Promise<Containerd> {
    lab.nodeNs(node); // throws for a node the lab does not have
    const c = new Containerd(lab, node, opts);
    if (liveDirs.has(c.dir)) throw new Error(`containerd: node ${node} of lab ${lab.prefix} already has a Containerd`);
    sweepStaleRuns();
    claimRunDir();
    await mkdir(join(c.dir, 'pods'), { recursive: true });
    await writeFile(c.configFile, c.config());
    liveDirs.add(c.dir);
    lab.addTeardown(c);
    await c.start();
    const image = await sandboxImage(lab);
    await c.ctr(['images', 'import', image.file], 60_000);
    await until(`containerd's CRI on ${c.ns} to know ${image.name}`, async () => (await c.cri.imageStatus(image.name)) !== undefined, 10_000, 100);
    return c;
  }

  get configFile(): string {
    return join(this.dir, 'config.toml');
  }

  get logFile(): string {
    return join(this.lab.dir, 'logs', `containerd-n${this.node}.log`);
  }

  /** containerd's log, every start of it (the CNI plugins' stderr lands here too). */
  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** containerd's PID (the last one started). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return !this.procExited;
  }

  /**
   * config.toml: everything under `dir`; the CRI plugin's sandbox image is
   * the imported one; OOM score adjustments kept within what the process
   * may set (the machine grants no CAP_SYS_RESOURCE, and a sandbox's default
   * is -998); pod netns pinned under the state dir, not /var/run/netns.
   */
  private config(): string {
    const d = (p: string): string => toml(join(this.dir, p));
    const cri = '[plugins."io.containerd.grpc.v1.cri"';
    return [
      'version = 2',
      `root = ${d('root')}`,
      `state = ${d('state')}`,
      '[grpc]',
      `  address = ${toml(this.socket)}`,
      '[ttrpc]',
      `  address = ${toml(`${this.socket}.ttrpc`)}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${d('opt')}`,
      `${cri}]`,
      `  sandbox_image = ${toml(SANDBOX_IMAGE)}`,
      '  restrict_oom_score_adj = true',
      '  netns_mounts_under_state_dir = true',
      `${cri}.cni]`,
      `  bin_dir = ${toml(this.opts.binDir)}`,
      `  conf_dir = ${toml(this.opts.confDir)}`,
      `${cri}.containerd.runtimes.runc]`,
      '  runtime_type = "io.containerd.runc.v2"',
      `${cri}.containerd.runtimes.runc.options]`,
      `  Root = ${d('runc')}`,
      '',
    ].join('\n');
  }

  /** Starts containerd (again, after stop()) and waits until its CRI answers. */
  async start(): Promise<void> {
    if (this.destroying) throw new Error(`containerd on ${this.ns}: destroyed`);
    if (this.running) throw new Error(`containerd on ${this.ns}: already running`);
    const p = this.lab.spawn(this.ns, [CONTAINERD, '--config', this.configFile], { hostMounts: true, logFile: this.logFile });
    this.proc = p;
    this.procExited = false;
    void p.exited.then(() => {
      if (this.proc === p) this.procExited = true;
    });
    await this.proc.waitForLog(/containerd successfully booted/, 20_000);
    await until(`containerd's CRI on ${this.ns}`, () => this.cri.version().then(() => true, () => false), 10_000, 100);
  }

  /** Stops containerd by PID (SIGTERM, SIGKILL after 10 s); its shims and sandboxes keep running, as on a real node. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    await p.stop(signal, STOP_GRACE_MS);
  }

  /** `ctr --address <socket> -n k8s.io args...` */
  async ctr(args: string[], timeoutMs = 20_000): Promise<ExecResult> {
    return run('ctr', ['--address', this.socket, '--namespace', CRI_NAMESPACE, ...args], { context: `ns ${this.ns} (ctr)`, timeoutMs });
  }

  /** A sandbox config as kubelet writes one: pod metadata, hostname, log dir, hostPorts, the pod's own network namespace, this instance's cgroup parent. */
  sandboxConfig(name: string, opts: SandboxOptions = {}): PodSandboxConfig {
    return {
      metadata: { name, uid: `uid-${this.lab.prefix}-${name}`, namespace: 'default', attempt: 0 },
      hostname: name,
      logDirectory: join(this.dir, 'pods', name),
      portMappings: opts.portMappings ?? [],
      labels: { 'io.kubernetes.pod.name': name, 'weft.test/lab': this.lab.prefix },
      linux: { cgroupParent: this.cgroupParent, securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    };
  }

  /** RunPodSandbox (CNI ADD), then PodSandboxStatus for its address, netns and pid. */
  async runSandbox(name: string, opts: SandboxOptions = {}): Promise<Sandbox> {
    if (this.destroying) throw new Error(`containerd on ${this.ns}: destroyed`);
    const config = this.sandboxConfig(name, opts);
    await mkdir(config.logDirectory!, { recursive: true });
    const id = await this.cri.runPodSandbox(config, opts.timeoutMs);
    this.sandboxIds.add(id);
    const { status, info } = await this.cri.podSandboxStatus(id, true);
    const verbose = JSON.parse(info.info ?? '{}') as SandboxInfo;
    const netns = verbose.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
    if (status.state !== 'SANDBOX_READY' || !netns || !verbose.pid) {
      throw new Error(`containerd on ${this.ns}: sandbox ${name} (${id}) is ${status.state}, netns ${netns}, pid ${verbose.pid}`);
    }
    return { id, name, ip: status.network?.ip ?? '', netns, pid: verbose.pid, config };
  }

  /** StopPodSandbox (containers stopped, CNI DEL), then RemovePodSandbox (CNI DEL again, as containerd 1.6 does it). */
  async removeSandbox(id: string): Promise<void> {
    await this.cri.stopPodSandbox(id);
    await this.cri.removePodSandbox(id);
  }

  /** CreateContainer + StartContainer in `sandbox`, running `argv` on the sandbox image; its log is `<sandbox log dir>/<name>.log`. Its id. */
  async runContainer(sandbox: Sandbox, name: string, argv: string[]): Promise<string> {
    const id = await this.cri.createContainer(sandbox.id, { metadata: { name }, image: { image: SANDBOX_IMAGE }, command: argv, logPath: `${name}.log` }, sandbox.config);
    await this.cri.startContainer(id);
    return id;
  }

  /** `argv` run in the sandbox's network namespace (as a container of the pod would be). */
  async execIn(sandbox: Sandbox, argv: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<ExecResult> {
    return run('nsenter', [`--net=${sandbox.netns}`, ...argv], { context: `sandbox ${sandbox.name} on ${this.ns}`, timeoutMs: opts.timeoutMs ?? 10_000, allowFail: opts.allowFail ?? false });
  }

  /** One ping from the sandbox; true if answered. */
  async ping(sandbox: Sandbox, to: string, timeoutS = 3): Promise<boolean> {
    const r = await this.execIn(sandbox, ['ping', '-n', '-q', '-c', '1', '-W', String(timeoutS), to], { allowFail: true, timeoutMs: timeoutS * 1000 + 3000 });
    return r.code === 0;
  }

  /** `/var/lib/cni/results` files of this instance's sandboxes (the conflist's network and containerd's loopback). */
  cniResultFiles(): string[] {
    return cniResultFiles({ ids: [...this.sandboxIds, ...storedSandboxIds(this.dir)] });
  }

  /** Host PIDs of the shims serving this instance. */
  shimPids(): number[] {
    return shimsOf(this.socket).map((s) => s.pid);
  }

  /** The shim sockets of this instance's sandboxes that exist (in /run/containerd/s). */
  shimSockets(): string[] {
    return [...this.sandboxIds].map((id) => shimSocket(this.socket, CRI_NAMESPACE, id)).filter((f) => existsSync(f));
  }

  /** Mount points under this instance's dir (netns pins, rootfs, shm). */
  mounts(): string[] {
    return mountsUnder(this.dir);
  }

  /** PIDs in this instance's pod cgroups. */
  podPids(): number[] {
    return podPidsOf(this.cgroupParent);
  }

  /** Idempotent. See the contracts at the top. */
  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: string[] = [];
    let graceful = false;
    if (this.running) {
      try {
        for (const s of await this.cri.listPodSandbox()) await this.removeSandbox(s.id);
        const left = await this.cri.listPodSandbox();
        if (left.length) errors.push(`sandboxes left after Stop/RemovePodSandbox: ${left.map((s) => s.metadata.name).join(' ')}`);
        graceful = left.length === 0;
      } catch (e) {
        errors.push((e as Error).message);
      }
      await this.stop();
    }
    this.cri.close();
    if (graceful) {
      // Shims exit on their own once their sandbox is removed; give them a moment before calling one a leak.
      await until('shims to exit', () => this.shimPids().length === 0, 5000, 50).catch(() => undefined);
      const shims = this.shimPids();
      const mounts = this.mounts();
      if (shims.length) errors.push(`shims still running after every sandbox was removed: pids ${shims.join(' ')}`);
      if (mounts.length) errors.push(`mounts left after every sandbox was removed: ${mounts.join(' ')}`);
    }
    errors.push(...removeFootprint(this.footprint));
    liveDirs.delete(this.dir);
    if (errors.length) throw new Error(`containerd on ${this.ns}: destroy: ${errors.join('; ')}`);
  }

  /** @internal Synchronous best-effort destroy() for the lab's exit/signal handlers. Never throws. */
  destroySync(): void {
    if (!liveDirs.has(this.dir)) return;
    this.destroying ??= Promise.resolve();
    try {
      this.cri.close();
      if (this.proc && this.running) killAndWait([this.proc.pid]);
      removeFootprint(this.footprint);
    } catch {
      // best effort
    }
    liveDirs.delete(this.dir);
  }

  private get footprint(): Footprint {
    return { dir: this.dir, socket: this.socket, cgroupParent: this.cgroupParent, sandboxIds: [...this.sandboxIds] };
  }
}
