// A real systemd in a lab node: systemd-nspawn --volatile=yes boots this
// machine's own OS tree (its /usr read-only, everything else a fresh tmpfs)
// with systemd as PID 1, in node i's network namespace, so services it starts
// reach only the lab. Commands run inside through nsenter into the
// container's PID 1. Nothing is registered with machined (PID 1 outside is
// not systemd here); the container is one process tree of this run's,
// stopped by PID on every path (a lab teardown hook), and what nspawn leaves
// under /run/systemd is removed when this run created it.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../harness/until.js';
import { run, sleep, type ExecResult } from './exec.js';
import type { Lab, TeardownHook } from './lab.js';

export interface Bind {
  /** A path on this machine. */
  readonly from: string;
  /** Where the container sees it. */
  readonly to: string;
  readonly readOnly?: boolean;
}

export interface BootOptions {
  /** Files and directories the container sees (on top of its own /usr and empty /etc, /var, /run). */
  readonly binds?: readonly Bind[];
  /** How long the boot may take to reach a running (or degraded) system. Default 60 s. */
  readonly bootTimeoutMs?: number;
}

/** What nspawn creates under /run/systemd and does not always remove (its propagation directory's cleanup refuses /run). */
const NSPAWN_RUN_DIRS = ['/run/systemd/nspawn-root', '/run/systemd/nspawn/propagate', '/run/systemd/nspawn'];
const STOP_GRACE_MS = 20_000;

export class NodeContainer implements TeardownHook {
  private readonly exited: Promise<void>;
  private done = false;
  private init = 0;

  private constructor(
    private readonly child: ChildProcess,
    readonly machine: string,
    readonly logFile: string,
    private readonly runDirsBefore: ReadonlySet<string>,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => (this.done = true));
  }

  /** Boots the container in node `node`'s namespace and waits until its systemd runs (degraded counts: some of the OS's units fail without hardware). */
  static async boot(lab: Lab, node: number, opts: BootOptions = {}): Promise<NodeContainer> {
    const ns = lab.nodeNs(node);
    const machine = ns;
    const logFile = join(lab.dir, 'logs', `nspawn-n${node}.log`);
    mkdirSync(join(lab.dir, 'logs'), { recursive: true });
    const runDirsBefore = new Set(NSPAWN_RUN_DIRS.filter((d) => existsSync(d)));
    const args = [
      '--pdeathsig', 'SIGTERM', '--',
      'systemd-nspawn', '--quiet',
      // No machined or systemd to register with or to make a scope: the container stays in this process's cgroup.
      '--keep-unit', '--register=no',
      '--volatile=yes', '--directory=/', `--machine=${machine}`,
      `--network-namespace-path=/run/netns/${ns}`, '--capability=CAP_NET_ADMIN', '--bind=/dev/net/tun',
      ...(opts.binds ?? []).map((b) => `--bind${b.readOnly ? '-ro' : ''}=${b.from}:${b.to}`),
      '--boot', 'systemd.firstboot=off',
    ];
    const out = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('setpriv', args, { stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    child.unref();
    const early = new Promise<never>((_, reject) => child.once('exit', (code, sig) => reject(new Error(`systemd-nspawn exited (${code ?? sig}) before it booted: ${readFileSync(logFile, 'utf8').slice(-2000)}`))));
    early.catch(() => undefined);
    const c = new NodeContainer(child, machine, logFile, runDirsBefore);
    lab.addTeardown(c);
    try {
      c.init = await Promise.race([initOf(child.pid!), early]);
      let state = '';
      await until(
        () => `container ${machine} to boot (systemctl is-system-running: ${state})`,
        async () => {
          state = (await Promise.race([c.exec(['systemctl', 'is-system-running'], { allowFail: true }), early])).stdout.trim();
          return state === 'running' || state === 'degraded';
        },
        opts.bootTimeoutMs ?? 60_000,
        250,
      );
      return c;
    } catch (err) {
      await c.destroy();
      throw err;
    }
  }

  /** The container's PID 1 (systemd), as this machine numbers it. */
  get initPid(): number {
    return this.init;
  }

  /** Runs `argv` inside the container (all of its namespaces). */
  exec(argv: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run('nsenter', ['--target', String(this.initPid), '--all', '--', ...argv], { context: `container ${this.machine}`, timeoutMs: opts.timeoutMs ?? 30_000, allowFail: opts.allowFail ?? false });
  }

  /** Powers the container off (SIGTERM to nspawn: a clean shutdown inside), SIGKILL after 20 s; removes what nspawn left under /run/systemd. */
  async destroy(): Promise<void> {
    if (!this.done) {
      this.signal('SIGTERM');
      await Promise.race([this.exited, sleep(STOP_GRACE_MS)]);
      if (!this.done) {
        this.signal('SIGKILL');
        await Promise.race([this.exited, sleep(5000)]);
      }
    }
    this.removeRunDirs();
    if (!this.done) throw new Error(`systemd-nspawn (pid ${this.child.pid}) did not exit after SIGKILL`);
  }

  destroySync(): void {
    this.signal('SIGKILL');
  }

  private signal(sig: NodeJS.Signals): void {
    try {
      if (!this.done) process.kill(this.child.pid!, sig);
    } catch {
      // already gone
    }
  }

  private removeRunDirs(): void {
    rmSync(join('/run/systemd/nspawn/propagate', this.machine), { recursive: true, force: true });
    for (const d of NSPAWN_RUN_DIRS) {
      if (this.runDirsBefore.has(d)) continue;
      try {
        rmdirSync(d);
      } catch {
        // not empty (another container's), or gone
      }
    }
  }
}

/** The container's PID 1: nspawn's child once it has execed systemd. */
function initOf(nspawnPid: number): Promise<number> {
  return until(`systemd-nspawn (pid ${nspawnPid}) to exec systemd in its child`, () => {
    try {
      const child = Number(readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(' ')[0]);
      return child > 0 && readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'systemd' && child;
    } catch {
      return undefined; // not there yet
    }
  }, 10_000);
}
