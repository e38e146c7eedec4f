// One weftd per node: an exclusive flock on <stateDir>/weftd.lock, held for
// the daemon's life (the kernel drops it when the process dies, however it
// dies), whose content names the holder for the one that is refused.

import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError, errorMessage } from '../errors.js';
import { loadAddon } from './addon.js';

const EWOULDBLOCK = 11;

export class InstanceLock {
  private constructor(
    private fd: number | undefined,
    readonly path: string,
    /** Set when the lock is held but the holder could not be written into its file (a full disk). */
    readonly problem?: WeftError,
  ) {}

  /**
   * Takes the lock or throws WEFT_ALREADY_RUNNING naming the holder (pid,
   * node name, start time). The file is opened without following a symlink.
   */
  static acquire(stateDir: string, node: string): InstanceLock {
    const path = join(stateDir, 'weftd.lock');
    let fd: number;
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new WeftError('WEFT_STATE_WRITE', `cannot create the state directory ${stateDir}: ${errorMessage(err)}`, { path: stateDir, op: 'mkdir' });
    }
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw new WeftError('WEFT_STATE_WRITE', `cannot open the instance lock ${path}: ${errorMessage(err)}`, { path, op: 'open' });
    }
    const rc = loadAddon().lockFile(fd);
    if (rc !== 0) {
      let holder = '';
      try {
        holder = readFileSync(path, 'utf8').trim();
      } catch {
        // unreadable: the message says less
      }
      closeSync(fd);
      if (rc === EWOULDBLOCK) {
        throw new WeftError(
          'WEFT_ALREADY_RUNNING',
          `another weftd already runs on this node (${holder || 'holder unknown'}; lock ${path}): stop it first, two daemons would split the node's traffic`,
          { path, holder },
        );
      }
      throw new WeftError('WEFT_HOST_SETUP', `cannot lock ${path}: errno ${rc}`, { path });
    }
    const me = `pid ${process.pid}, node ${node}, started ${new Date().toISOString()}`;
    try {
      ftruncateSync(fd, 0);
      writeSync(fd, `${me}\n`, 0);
    } catch (err) {
      // The flock is what keeps a second weftd off; the text only names the holder to it.
      const problem = new WeftError('WEFT_STATE_WRITE', `cannot write this weftd's pid into the instance lock ${path}: ${errorMessage(err)}; the lock holds, but a second weftd cannot be told who holds it`, {
        path,
        op: 'write',
      });
      return new InstanceLock(fd, path, problem);
    }
    return new InstanceLock(fd, path);
  }

  /**
   * The weftd holding the lock in `stateDir`: its pid and node name, from
   * the lock file. WEFT_NOT_RUNNING when there is no lock file or no one
   * holds the lock (this process can take it, and lets it go at once).
   */
  static holder(stateDir: string): { pid: number; node: string } {
    const path = join(stateDir, 'weftd.lock');
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw new WeftError('WEFT_NOT_RUNNING', `no weftd runs with state directory ${stateDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message} on ${path}); see weftd's --state-dir`, { path });
    }
    try {
      if (loadAddon().lockFile(fd) === 0) throw new WeftError('WEFT_NOT_RUNNING', `no weftd runs with state directory ${stateDir}: its instance lock ${path} is free`, { path });
      const m = /^pid (\d+), node (\S+),/.exec(readFileSync(path, 'utf8'));
      if (!m) throw new WeftError('WEFT_NOT_RUNNING', `the instance lock ${path} names no weftd`, { path });
      return { pid: Number(m[1]), node: m[2]! };
    } finally {
      closeSync(fd);
    }
  }

  release(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
