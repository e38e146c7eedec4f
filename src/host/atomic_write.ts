// Small files that must never be seen half written (the subnet file, the last
// subnet held, CNI state, installed plugin files), and the plugin links: made
// at a fresh temp name beside the target, then renamed over it.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/**
 * Replaces `path` by one rename with what `make` creates at the temp name it
 * is given: new each time, beside `path`, and to be created exclusively (so
 * a symlink planted there is never followed). On failure the temp is removed
 * and the error thrown.
 */
function replaceAtomic(path: string, make: (tmp: string) => void): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    make(tmp);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Replaces `path` with `content`, flushed before the rename (O_CREAT | O_EXCL on the temp file). */
export function writeFileAtomic(path: string, content: string, mode: number): void {
  replaceAtomic(path, (tmp) => {
    const fd = openSync(tmp, 'wx', mode);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  });
}

/** Makes `path` a symlink to `target`, replacing what is there (a dangling link, say) in one rename. */
export function symlinkAtomic(target: string, path: string): void {
  replaceAtomic(path, (tmp) => symlinkSync(target, tmp));
}
