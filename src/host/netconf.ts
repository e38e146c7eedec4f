// Host network configuration through iproute2: the TUN's address, MTU and
// link state, facts about the underlay interface, and every link as it is
// now (for `weftctl check`). Runs at control-plane rate only; every failure
// names the command and the device.

import { readFile } from 'node:fs/promises';
import { WeftError } from '../errors.js';
import { mustRun } from './command.js';
import { setAcceptLocal } from './rtnetlink.js';

function ip(args: string[]): Promise<string> {
  return mustRun('ip', args);
}

/**
 * Gives the TUN `addr/prefixLen` (so the kernel routes the cluster network
 * into it), sets its MTU and brings it up. The ICMP errors weft writes into
 * the TUN come from the TUN's own address, which the kernel drops as a
 * martian unless the device accepts local sources: set over rtnetlink, so
 * a read-only /proc/sys (the unit's ProtectKernelTunables) is no obstacle.
 * `gsoMaxSegs` bounds the segments of the super-packets the kernel hands a
 * vnet-header reader.
 */
export async function configureTun(dev: string, addrWithPrefix: string, mtu: number, gsoMaxSegs?: number): Promise<void> {
  setAcceptLocal(dev);
  await ip(['link', 'set', 'dev', dev, 'mtu', String(mtu), ...(gsoMaxSegs === undefined ? [] : ['gso_max_segs', String(gsoMaxSegs)])]);
  await ip(['addr', 'replace', addrWithPrefix, 'dev', dev]);
  await ip(['link', 'set', 'dev', dev, 'up']);
}

interface IpAddrJson {
  ifname: string;
  mtu?: number;
  flags?: string[];
  master?: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** A network interface as the kernel has it now. */
export interface LinkInfo {
  readonly name: string;
  readonly mtu: number;
  /** Administratively up (IFF_UP). */
  readonly up: boolean;
  /** The bridge it is a port of, if any. */
  readonly master: string | null;
  /** Its IPv4 addresses with their prefix length, `198.19.1.1/24`. */
  readonly addresses: readonly string[];
}

/** Every link of this network namespace with its IPv4 addresses: one `ip -j addr show`. */
export async function listLinks(): Promise<LinkInfo[]> {
  const out = JSON.parse(await ip(['-j', 'addr', 'show'])) as IpAddrJson[];
  return out.map((l) => ({
    name: l.ifname,
    mtu: l.mtu ?? 0,
    up: l.flags?.includes('UP') ?? false,
    master: l.master ?? null,
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

/** The first global IPv4 address of `iface` and its MTU. */
export async function interfaceInfo(iface: string): Promise<{ ip: string; mtu: number }> {
  const out = JSON.parse(await ip(['-j', '-4', 'addr', 'show', 'dev', iface])) as IpAddrJson[];
  const addr = out[0]?.addr_info?.find((a) => a.family === 'inet' && a.scope !== 'host');
  if (!out[0] || !addr) {
    throw new WeftError('WEFT_NO_PUBLIC_IP', `interface ${iface} has no IPv4 address; give --public-ip`, { iface });
  }
  return { ip: addr.local, mtu: out[0].mtu ?? Number(await readFile(`/sys/class/net/${iface}/mtu`, 'utf8')) };
}

/** The interface holding the IPv4 default route, if any. */
export async function defaultRouteInterface(): Promise<string | undefined> {
  const out = JSON.parse(await ip(['-j', '-4', 'route', 'show', 'default'])) as { dev?: string }[];
  return out[0]?.dev;
}

/** The interface that holds `addr`, if any. */
export async function interfaceWithAddress(addr: string): Promise<string | undefined> {
  const out = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as IpAddrJson[];
  return out.find((l) => l.addr_info?.some((a) => a.local === addr))?.ifname;
}
