// host-local's reservations as it keeps them on disk: <ipamDir>/<network>/<ip>,
// holding "<containerID>\r\n<ifname>". Read for CHECK and the subnet-change
// check, removed directly only where host-local cannot be asked (GC, and DEL
// with neither stored state nor a subnet file).

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseIp } from '../net/ipv4.js';
import type { Attachment, WeftNetConf } from './netconf.js';
import { CniCode, CniError } from './spec.js';

export interface Reservation extends Attachment {
  /** The reserved address, as host-local names its file. */
  readonly ip: string;
}

function dirOf(conf: WeftNetConf): string {
  return join(conf.ipamDir, conf.name);
}

export function listReservations(conf: WeftNetConf): Reservation[] {
  const dir = dirOf(conf);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CniError(CniCode.Io, `cannot list host-local reservations in ${dir}: ${(err as Error).message}`);
  }
  return names.flatMap((ip) => {
    if (parseIp(ip) < 0) return [];
    try {
      const [containerId = '', ifname = ''] = readFileSync(join(dir, ip), 'utf8').split(/\r?\n/);
      return [{ ip, containerId: containerId.trim(), ifname: ifname.trim() }];
    } catch {
      return [];
    }
  });
}

/** Removes the reservations `drop` selects; returns them. */
export function removeReservations(conf: WeftNetConf, drop: (r: Reservation) => boolean): Reservation[] {
  const gone = listReservations(conf).filter(drop);
  for (const r of gone) {
    try {
      rmSync(join(dirOf(conf), r.ip), { force: true });
    } catch (err) {
      throw new CniError(CniCode.Io, `cannot remove host-local reservation ${join(dirOf(conf), r.ip)}: ${(err as Error).message}`);
    }
  }
  return gone;
}

/** True when reservation `r` belongs to attachment `a` (an empty ifname, from older host-local, matches any). */
export function heldBy(r: Reservation, a: Attachment): boolean {
  return r.containerId === a.containerId && (r.ifname === '' || r.ifname === a.ifname);
}
