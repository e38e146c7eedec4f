// Where weft's own files are at run time (package.json, proto/, the addon, the CNI plugin's bundle):
// the tree's root is the nearest directory above the running module that holds package.json, so the
// module graph (dist/**), the bundles (dist/*.cjs, dist/cni/plugin.cjs), tsx on src/ and an installed
// tree (/usr/lib/weft) all find the same files whatever their depth.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}: weft's tree is incomplete`);
  }
}

/** The tree's root directory. */
export const TREE_ROOT: string = findRoot(dirname(fileURLToPath(import.meta.url)));

/** A path inside the tree, from its root ('proto/weft.proto'). */
export function treePath(relative: string): string {
  return join(TREE_ROOT, relative);
}
