// Small files that must never be seen half written (the subnet file, the last
// subnet held, CNI state, installed plugin files): written to a fresh temp
// file beside the target, flushed, then renamed over it.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/**
 * Replaces `path` with `content`. The temp name is new each time and created
 * exclusively (O_CREAT | O_EXCL), so a symlink planted at it is never
 * followed; on failure the temp file is removed and the error thrown.
 */
export function writeFileAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}
