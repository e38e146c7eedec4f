// /run/weft/subnet.env: the lease as flannel's CNI plugin reads it, written
// atomically (temp file + rename) so a reader never sees half a file.

import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Cidr, formatCidr, formatIp } from '../net/ipv4.js';

export interface SubnetEnv {
  readonly network: Cidr;
  readonly subnet: Cidr;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

/** flannel's format: FLANNEL_SUBNET is the subnet's first usable address with the subnet's length. */
export function formatSubnetEnv(e: SubnetEnv): string {
  return [
    `FLANNEL_NETWORK=${formatCidr(e.network)}`,
    `FLANNEL_SUBNET=${formatIp(e.subnet.base + 1)}/${e.subnet.len}`,
    `FLANNEL_MTU=${e.mtu}`,
    `FLANNEL_IPMASQ=${e.ipMasq}`,
    '',
  ].join('\n');
}

export async function writeSubnetEnv(path: string, e: SubnetEnv): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, formatSubnetEnv(e), { mode: 0o644 });
  await rename(tmp, path);
}
