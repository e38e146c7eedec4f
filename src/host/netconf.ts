// Host network configuration: the TUN's address, MTU and link state and the
// underlay interface's address and MTU over rtnetlink, and every link as it
// is now (for `weftctl check`) from iproute2. Runs at control-plane rate
// only; every failure names the device or the command. weftd's start runs no
// `ip`: each process is a fork of the whole daemon, which costs it more than
// the change, so what the kernel tells without one (rtnetlink,
// /proc/net/route, getifaddrs) is read directly.

import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { WeftError } from '../errors.js';
import { formatIp, parseIp } from '../net/ipv4.js';
import { mustRun } from './command.js';
import { acceptLocalRequest, addressesOf, getLink, newAddrRequest, RT_SCOPE_HOST, rtnlSteps, setLinkRequest } from './rtnetlink.js';

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
  const link = getLink(dev);
  if (!link) throw new WeftError('WEFT_HOST_SETUP', `cannot configure ${dev}: no such device`, { iface: dev, errno: 'ENODEV' });
  const [addr, len] = addrWithPrefix.split('/');
  // In the order `ip` took them, one conversation: each answered on its own.
  rtnlSteps([
    { what: `cannot set net.ipv4.conf.${dev}.accept_local over rtnetlink`, req: acceptLocalRequest(dev) },
    { what: `cannot set ${dev}'s MTU to ${mtu}${gsoMaxSegs === undefined ? '' : ` and gso_max_segs to ${gsoMaxSegs}`}`, req: setLinkRequest(dev, { mtu, ...(gsoMaxSegs === undefined ? {} : { gsoMaxSegs }) }) },
    { what: `cannot give ${dev} ${addrWithPrefix}`, req: newAddrRequest({ index: link.index, ip: parseIp(addr!), prefixLen: Number(len) }) },
    { what: `cannot bring ${dev} up`, req: setLinkRequest(dev, { up: true }) },
  ]);
}

/** Changes the TUN's MTU on a running node (encryption turned on or off). */
export async function setTunMtu(dev: string, mtu: number): Promise<void> {
  rtnlSteps([{ what: `cannot set ${dev}'s MTU to ${mtu}`, req: setLinkRequest(dev, { mtu }) }]);
}

interface IpAddrJson {
  ifname: string;
  mtu?: number;
  flags?: string[];
  master?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
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

/** The first IPv4 address of `iface` not of host scope, and its MTU. */
export function interfaceInfo(iface: string): { ip: string; mtu: number } {
  const link = getLink(iface);
  if (!link) throw new WeftError('WEFT_HOST_SETUP', `interface ${iface} does not exist`, { iface, errno: 'ENODEV' });
  const addr = addressesOf(link.index).find((a) => a.scope !== RT_SCOPE_HOST);
  if (!addr) throw new WeftError('WEFT_NO_PUBLIC_IP', `interface ${iface} has no IPv4 address; give --public-ip`, { iface });
  return { ip: formatIp(addr.ip), mtu: link.mtu };
}

const RTF_UP = 0x1;

/**
 * The interface of the main table's IPv4 default route in /proc/net/route's
 * text (the lowest metric of those up), if any: what `ip -4 route show
 * default` lists first.
 */
export function defaultRouteIn(procNetRoute: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of procNetRoute.split('\n').slice(1)) {
    const [iface, destination, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!iface || destination !== '00000000' || mask !== '00000000' || (Number.parseInt(flags ?? '0', 16) & RTF_UP) === 0) continue;
    const m = Number(metric);
    if (!best || m < best.metric) best = { iface, metric: m };
  }
  return best?.iface;
}

/** The interface holding the IPv4 default route, if any (/proc/net is this network namespace's). */
export async function defaultRouteInterface(): Promise<string | undefined> {
  return defaultRouteIn(await readFile('/proc/net/route', 'utf8'));
}

/** The interface that holds `addr`, if any (getifaddrs: this network namespace's). */
export function interfaceWithAddress(addr: string): string | undefined {
  return Object.entries(networkInterfaces()).find(([, addrs]) => addrs?.some((a) => a.family === 'IPv4' && a.address === addr))?.[0];
}
