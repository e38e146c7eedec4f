// A PATH for a host without some commands (no nft, say): one directory
// linking every other command this process's PATH and the usual bin
// directories hold, the first of each name as a PATH lookup finds it.

import { mkdir, readdir, symlink } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** Fills `dir` (made if missing) with links to every command but `cmds`; returns `dir`, to be the whole PATH. */
export async function pathWithout(dir: string, cmds: readonly string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const taken = new Set(cmds);
  for (const d of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    const names = d ? await readdir(d).catch(() => []) : [];
    for (const name of names.filter((n) => !taken.has(n))) {
      taken.add(name);
      await symlink(join(d, name), join(dir, name));
    }
  }
  return dir;
}
