// The CNI result cache the runtimes share, /var/lib/cni/results/<network>-<container id>-<ifname>:
// finding a run's files by container id and network, and removing them, for the podman and
// containerd harnesses' teardown and the tests asserting none are left; and host-local's
// reservations, the other record of a pod that a CNI DEL must take away.

import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const CNI_RESULTS_DIR = '/var/lib/cni/results';

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The result files of network `network` (any, when not given) whose container id is one of `ids` (any, when not given). */
export function cniResultFiles(filter: { readonly network?: string; readonly ids?: Iterable<string> }): string[] {
  const re = new RegExp(`^${filter.network === undefined ? '.+' : escapeRe(filter.network)}-([0-9a-f]{64})-[^-]+$`);
  const ids = filter.ids && new Set(filter.ids);
  try {
    return readdirSync(CNI_RESULTS_DIR).filter((f) => {
      const id = re.exec(f)?.[1];
      return id !== undefined && (!ids || ids.has(id));
    });
  } catch {
    return [];
  }
}

/** The addresses host-local holds for `network` in its data dir `ipamDir` (one file each, named the address); [] before it reserved any. */
export function hostLocalReservations(ipamDir: string, network: string): string[] {
  const d = join(ipamDir, network);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
}

/** Removes result files named as cniResultFiles names them; no error for one already gone. */
export function removeCniResultFiles(files: readonly string[]): void {
  for (const f of files) rmSync(join(CNI_RESULTS_DIR, f), { force: true });
}
