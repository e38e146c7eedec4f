// A real podman (CNI backend) inside a lab node's network namespace. Owns the
// node's podman config and container store, the containers it starts and their
// CNI result-cache files (the busybox root filesystem they run on: rootfs.ts).
//
// The settings are the ones podman 4.3.1 needs on this Debian machine (runc,
// not crun; cgroupfs; file events; explicit rlimits; vfs storage). Every
// podman call is `nsenter --net=/run/netns/<node> podman <global flags> ...`
// (never `ip netns exec`: its private mount namespace hides the container
// netns podman mounts under /run/netns from the next call), bounded in time.
// Contracts:
//   - one Podman per lab node; its store, run and tmp dirs are its own, so
//     `podman ... --all` only ever sees this instance's containers;
//   - containers run `--read-only` on one shared busybox rootfs per lab run
//     (a per-container tmpfs on /tmp and /run), with no image or registry;
//   - destroy() removes the containers while the node namespace (and the
//     lab's processes, which a CNI DEL may need) still exist, then their
//     /var/lib/cni/results files, then its dir. It is a lab teardown
//     hook: lab.destroy() and the lab's exit/signal handlers run it (or its
//     synchronous twin) before they stop processes or delete namespaces.

import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runSync, type ExecResult } from './exec.js';
import type { Lab, TeardownHook } from './lab.js';
import { cniResultFiles, removeCniResultFiles } from './cni_results.js';
import { mountsUnder, pidAlive } from './netns.js';
import { busyboxRootfs } from './rootfs.js';

export interface PodmanOptions {
  /** CNI network name (the conflist's "name"): unique to this run on the machine (/var/lib/cni/results is shared); the lab's nodes may share it. */
  network: string;
  /** Directory holding the node's *.conflist (podman reads nothing else there). */
  confDir: string;
  /** cni_plugin_dirs, searched in order, e.g. [weftBinDir, '/usr/lib/cni']. */
  pluginDirs: string[];
}

export interface PodmanRunOptions {
  /** `-p` specs, e.g. '8080:80'. */
  publish?: string[];
  /** Default true: returns once the container runs (stdout: its id). false: waits for it to exit; the container is `--rm`. */
  detach?: boolean;
  capAdd?: string[];
  /** Return a non-zero exit code instead of throwing (timeouts still throw). */
  allowFail?: boolean;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface PodmanCallOptions {
  allowFail?: boolean;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface ContainerInfo {
  id: string;
  /** The container's IPv4 address on this instance's network (its eth0); '' if it has none. */
  ip: string;
  /** Container init's host PID (0 when not running). */
  pid: number;
  conmonPid: number;
  /** The container's netns path, /run/netns/netns-<uuid> ('' when not running). */
  netns: string;
}

/** The parts of `podman inspect` (4.3) this file reads. */
interface InspectJson {
  Id?: string;
  State?: { Pid?: number; ConmonPid?: number };
  NetworkSettings?: { SandboxKey?: string; Networks?: Record<string, { IPAddress?: string } | undefined> };
}

const DEFAULT_TIMEOUT_MS = 30_000;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Dirs of the live instances: one Podman per lab node. */
const liveDirs = new Set<string>();

// ---------------------------------------------------------------------------

export class Podman implements TeardownHook {
  /** `<lab.dir>/n<i>/podman`: containers.conf, storage/, run/, tmp/. */
  readonly dir: string;
  readonly ns: string;
  readonly network: string;
  readonly rootfs: string;
  private readonly confFile: string;
  /** Every container started and not yet removed, by name (info filled in once it runs). */
  private readonly containers = new Map<string, Partial<ContainerInfo>>();
  /** Netns paths and ids of every detached container ever started, checked at destroy. */
  private readonly netnsSeen = new Set<string>();
  private readonly idsSeen = new Set<string>();
  private destroying: Promise<void> | undefined;

  private constructor(
    private readonly lab: Lab,
    readonly node: number,
    opts: PodmanOptions,
    rootfs: string,
  ) {
    this.ns = lab.nodeNs(node);
    this.dir = join(lab.dir, `n${node}`, 'podman');
    this.network = opts.network;
    this.rootfs = rootfs;
    this.confFile = join(this.dir, 'containers.conf');
  }

  static async create(lab: Lab, node: number, opts: PodmanOptions): Promise<Podman> {
    if (!NAME_RE.test(opts.network)) throw new Error(`podman: bad network name ${JSON.stringify(opts.network)}`);
    lab.nodeNs(node); // throws for a node the lab does not have
    const p = new Podman(lab, node, opts, await busyboxRootfs(lab));
    if (liveDirs.has(p.dir)) throw new Error(`podman: node ${node} of lab ${lab.prefix} already has a Podman`);
    await mkdir(p.dir, { recursive: true });
    const q = (v: string): string => JSON.stringify(v); // JSON strings are TOML basic strings
    await writeFile(
      p.confFile,
      [
        '[containers]',
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = [${opts.pluginDirs.map(q).join(', ')}]`,
        `network_config_dir = ${q(opts.confDir)}`,
        `default_network = ${q(opts.network)}`,
        '[engine]',
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        // Default /run/libpod is shared by every podman on the machine (alive lock, exits, events).
        `tmp_dir = ${q(join(p.dir, 'tmp'))}`,
        '',
      ].join('\n'),
    );
    liveDirs.add(p.dir);
    lab.addTeardown(p);
    return p;
  }

  /** Flags on every call; the store is this instance's alone. */
  private get globalArgs(): string[] {
    return ['--root', join(this.dir, 'storage'), '--runroot', join(this.dir, 'run'), '--storage-driver', 'vfs'];
  }

  /** Any podman command in the node's namespace, e.g. cli(['inspect', name]). */
  async cli(args: string[], opts: PodmanCallOptions = {}): Promise<ExecResult> {
    if (this.destroying) throw new Error(`podman on ${this.ns}: destroyed`);
    return this.call(args, opts);
  }

  private async call(args: string[], opts: PodmanCallOptions = {}): Promise<ExecResult> {
    if (!this.lab.allNamespaces.includes(this.ns)) throw new Error(`podman on ${this.ns}: the node namespace is gone`);
    return run('nsenter', [`--net=/run/netns/${this.ns}`, 'podman', ...this.globalArgs, ...args], {
      context: `ns ${this.ns} (podman)`,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      allowFail: opts.allowFail ?? false,
      env: { CONTAINERS_CONF: this.confFile },
    });
  }

  /** `podman run --name <name> --network <network> --read-only --rootfs <busybox> argv...`; argv should bound its own lifetime (e.g. sleep 600). */
  async run(name: string, argv: string[], opts: PodmanRunOptions = {}): Promise<ExecResult> {
    if (this.destroying) throw new Error(`podman on ${this.ns}: destroyed`);
    if (!NAME_RE.test(name)) throw new Error(`podman on ${this.ns}: bad container name ${JSON.stringify(name)}`);
    if (argv.length === 0) throw new Error(`podman on ${this.ns}: run ${name} with an empty argv`);
    if (this.containers.has(name)) throw new Error(`podman on ${this.ns}: container ${name} already exists`);
    const detach = opts.detach ?? true;
    const args = ['run', detach ? '-d' : '--rm', '--name', name, '--network', this.network, '--read-only'];
    for (const p of opts.publish ?? []) args.push('-p', p);
    for (const c of opts.capAdd ?? []) args.push('--cap-add', c);
    args.push('--rootfs', this.rootfs, ...argv);
    this.containers.set(name, {});
    let r: ExecResult;
    try {
      r = await this.cli(args, opts);
    } finally {
      if (!detach) this.containers.delete(name);
    }
    if (detach && r.code === 0) {
      const info = await this.inspect(name);
      this.containers.set(name, info);
      if (info.netns) this.netnsSeen.add(info.netns);
      if (info.id) this.idsSeen.add(info.id);
    }
    return r;
  }

  /** `podman exec <name> argv...` */
  async exec(name: string, argv: string[], opts: PodmanCallOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new Error(`podman on ${this.ns}: exec in ${name} with an empty argv`);
    return this.cli(['exec', name, ...argv], opts);
  }

  async inspect(name: string): Promise<ContainerInfo> {
    const r = await this.cli(['inspect', '--type', 'container', name], { timeoutMs: 10_000 });
    const c = (JSON.parse(r.stdout) as InspectJson[])[0];
    if (!c) throw new Error(`podman on ${this.ns}: inspect ${name} returned nothing`);
    // CNI backend: the top-level NetworkSettings.IPAddress stays empty for a named network; the address is per network.
    const net = c.NetworkSettings?.Networks?.[this.network];
    return {
      id: String(c.Id ?? ''),
      ip: String(net?.IPAddress ?? ''),
      pid: Number(c.State?.Pid ?? 0),
      conmonPid: Number(c.State?.ConmonPid ?? 0),
      netns: String(c.NetworkSettings?.SandboxKey ?? ''),
    };
  }

  /** The container's IPv4 address on eth0 (this instance's network); throws if it has none. */
  async ip(name: string): Promise<string> {
    const { ip } = await this.inspect(name);
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new Error(`podman on ${this.ns}: container ${name} has no IPv4 address on ${this.network}`);
    return ip;
  }

  /** `podman rm -f -t 0 <name>`: kill, CNI DEL, remove. */
  async rm(name: string): Promise<void> {
    await this.cli(['rm', '-f', '-t', '0', name]);
    this.containers.delete(name);
  }

  /** Every container of this instance: name, status, IP, ports (for logs and failure messages). */
  async ps(): Promise<string> {
    const r = await this.cli(['ps', '-a', '--format', '{{.Names}}\t{{.Status}}\t{{.Ports}}'], { timeoutMs: 10_000 });
    const rows = r.stdout.split('\n').filter((l) => l.trim());
    const lines = ['NAME\tSTATUS\tIP\tPORTS'];
    for (const row of rows) {
      const [name = '', status = '', ports = ''] = row.split('\t');
      const ip = await this.inspect(name).then((i) => i.ip, () => '?');
      lines.push([name, status, ip || '-', ports].join('\t'));
    }
    return lines.join('\n');
  }

  /** Idempotent. Removes every container of this instance, their CNI result files, and its dir. */
  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: string[] = [];
    const ids = this.containerIds();
    if (this.lab.allNamespaces.includes(this.ns)) {
      try {
        await this.call(['rm', '-f', '-t', '0', '--all'], { timeoutMs: 60_000 });
        const left = (await this.call(['ps', '-aq'], { timeoutMs: 10_000 })).stdout.trim();
        if (left) errors.push(`containers left after rm --all: ${left.split('\n').join(' ')}`);
      } catch (e) {
        errors.push((e as Error).message);
      }
    } else if (this.containers.size) {
      errors.push(`node namespace gone before podman destroy; containers ${[...this.containers.keys()].join(' ')} may leak`);
    }
    if (errors.length) this.forceCleanup();
    for (const n of this.netnsSeen) {
      if (existsSync(n)) {
        errors.push(`container netns ${n} left after rm`);
        runSync('ip', ['netns', 'del', n.slice('/run/netns/'.length)]);
      }
    }
    this.containers.clear();
    this.removeCniResults(ids);
    try {
      await rm(this.dir, { recursive: true, force: true });
    } catch (e) {
      errors.push(`rm -rf ${this.dir}: ${(e as Error).message}`);
    }
    liveDirs.delete(this.dir);
    if (errors.length) throw new Error(`podman on ${this.ns}: destroy: ${errors.join('; ')}`);
  }

  /** @internal Synchronous best-effort destroy() for the lab's exit/signal handlers. Never throws. */
  destroySync(): void {
    if (!liveDirs.has(this.dir)) return; // done
    liveDirs.delete(this.dir);
    this.destroying ??= Promise.resolve();
    try {
      const ids = this.containerIds();
      if (existsSync(`/run/netns/${this.ns}`)) {
        runSync(
          'nsenter',
          [`--net=/run/netns/${this.ns}`, 'env', `CONTAINERS_CONF=${this.confFile}`, 'podman', ...this.globalArgs, 'rm', '-f', '-t', '0', '--all'],
          30_000,
        );
      }
      this.forceCleanup();
      this.removeCniResults(ids);
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }

  /** When podman itself failed: SIGKILL this instance's container processes (verified by container id), drop their netns and host-side mounts. */
  private forceCleanup(): void {
    for (const c of this.containers.values()) {
      for (const pid of [c.pid, c.conmonPid]) {
        if (!pid || !c.id || !pidAlive(pid)) continue;
        try {
          const tag = readFileSync(`/proc/${pid}/cgroup`, 'utf8') + readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (tag.includes(c.id)) process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    for (const n of this.netnsSeen) if (existsSync(n)) runSync('ip', ['netns', 'del', n.slice('/run/netns/'.length)]);
    try {
      for (const m of mountsUnder(this.dir).reverse()) runSync('umount', ['-l', m]);
    } catch {
      // best effort
    }
  }

  /** This instance's containers: every one it saw start, plus any in its store (e.g. a run that timed out). */
  private containerIds(): Set<string> {
    const ids = new Set(this.idsSeen);
    try {
      for (const e of readdirSync(join(this.dir, 'storage', 'vfs-containers'))) if (/^[0-9a-f]{64}$/.test(e)) ids.add(e);
    } catch {
      // no store yet
    }
    return ids;
  }

  /** podman's CNI result files of `ids` only: several nodes' Podmans may share one network name. */
  private removeCniResults(ids: Set<string>): void {
    removeCniResultFiles(cniResultFiles({ network: this.network, ids }));
  }
}
