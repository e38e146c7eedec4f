// Long-running processes inside lab namespaces (etcd, weftd, iperf3 -s, ...).
// stdout and stderr go straight into a log file (the child holds the fd, so
// nothing passes through this process), which `waitForLog` polls.

import { spawn as spawnChild } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, fstatSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatCommand, sleep } from './exec.js';

export interface LabProcess {
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Sends a signal (default SIGTERM) unless the process has already exited. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit; rejects, naming the process, when it has not exited within `timeoutMs`. */
  exitWithin(timeoutMs: number): Promise<{ code: number | null; signal: string | null }>;
  /**
   * Sends `signal` (unless the process has already exited), then SIGKILL if it has not exited within `graceMs`;
   * resolves with the exit, rejects, naming the process, when it has not exited `graceMs` after SIGKILL either.
   */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<{ code: number | null; signal: string | null }>;
  /** This process's output so far (the log file from where this process started writing). */
  log(): string;
  /** Resolves with the first complete line of this process's output matching `re`; rejects with the log tail on timeout or if the process exits first. */
  waitForLog(re: RegExp, timeoutMs: number): Promise<string>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  logFile: string;
  /** Wrap in `setpriv --pdeathsig SIGTERM` so the child dies with this process even on SIGKILL. */
  pdeathsig?: boolean;
  /**
   * Enter only the namespace's network (`nsenter --net`), not a private mount
   * namespace of `ip netns exec`: what the child mounts (containerd's netns
   * pins and snapshots) is then seen, and can be unmounted, by the lab.
   */
  hostMounts?: boolean;
}

function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(size - offset);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function logTail(text: string, lines = 40, maxChars = 4000): string {
  let t = text.split('\n').slice(-lines).join('\n');
  if (t.length > maxChars) t = `...${t.slice(t.length - maxChars)}`;
  return t.trimEnd();
}

export class LabProcessImpl implements LabProcess {
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  readonly command: string;
  private exitInfo: { code: number | null; signal: string | null } | undefined;
  private readonly startOffset: number;

  constructor(
    readonly ns: string,
    readonly argv: readonly string[],
    opts: SpawnOptions,
  ) {
    if (argv.length === 0) throw new Error(`ns ${ns}: spawn with an empty argv`);
    this.logFile = opts.logFile;
    const [file, ...enter] = opts.hostMounts ? ['nsenter', `--net=/run/netns/${ns}`] : ['ip', 'netns', 'exec', ns];
    const args = [...enter, ...(opts.pdeathsig ? ['setpriv', '--pdeathsig', 'SIGTERM', '--'] : []), ...argv];
    this.command = formatCommand(file!, args);
    mkdirSync(dirname(this.logFile), { recursive: true });
    const fd = openSync(this.logFile, 'a');
    let child;
    try {
      writeSync(fd, `=== [lab] ${new Date().toISOString()} ns ${ns}: ${this.command}\n`);
      this.startOffset = fstatSync(fd).size;
      child = spawnChild(file!, args, {
        stdio: ['ignore', fd, fd],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) {
      throw new Error(`ns ${ns}: could not spawn \`${this.command}\``);
    }
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: string | null) => {
        if (this.exitInfo) return;
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      };
      child.once('exit', (code, signal) => done(code, signal));
      child.once('error', () => done(null, null));
    });
    // Do not hold the event loop open: a forgotten process is killed by the
    // lab's exit handler instead of hanging the test runner.
    child.unref();
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  get exitStatus(): { code: number | null; signal: string | null } | undefined {
    return this.exitInfo;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exitInfo) return;
    try {
      process.kill(this.pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  exitWithin(timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.describe()} did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.exited, late]).finally(() => clearTimeout(timer));
  }

  async stop(signal: NodeJS.Signals, graceMs: number): Promise<{ code: number | null; signal: string | null }> {
    this.kill(signal);
    try {
      return await this.exitWithin(graceMs);
    } catch {
      this.kill('SIGKILL');
      return this.exitWithin(graceMs);
    }
  }

  log(): string {
    return readFrom(this.logFile, this.startOffset);
  }

  describe(): string {
    return `pid ${this.pid} in ns ${this.ns} (\`${this.argv.join(' ')}\`, log ${this.logFile})`;
  }

  async waitForLog(re: RegExp, timeoutMs: number): Promise<string> {
    const rx = new RegExp(re.source, re.flags.replace(/[gy]/g, ''));
    const deadline = Date.now() + timeoutMs;
    let pos = this.startOffset;
    let partial = '';
    const scan = (final: boolean): string | undefined => {
      const chunk = readFrom(this.logFile, pos);
      pos += Buffer.byteLength(chunk, 'utf8');
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const l = line.replace(/\r$/, '');
        if (rx.test(l)) return l;
      }
      if (final && partial && rx.test(partial)) return partial;
      return undefined;
    };
    for (;;) {
      const exitedBefore = this.hasExited;
      const hit = scan(exitedBefore);
      if (hit !== undefined) return hit;
      if (exitedBefore) {
        const s = this.exitInfo!;
        throw new Error(
          `${this.describe()} exited (code ${s.code}, signal ${s.signal}) before its log matched ${re}; log tail:\n${logTail(this.log())}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${re} in the log of ${this.describe()}; log tail:\n${logTail(this.log())}`);
      }
      await Promise.race([sleep(Math.min(50, left)), this.exited]);
    }
  }
}
