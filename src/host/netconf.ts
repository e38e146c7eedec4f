// Host network configuration through iproute2: the TUN's address, MTU and
// link state, and facts about the underlay interface. Runs at control-plane
// rate only; every failure names the command and the device. Each `ip`
// process costs weftd's start more than the change it makes (a fork of the
// whole process): the TUN's changes go to one `ip -batch`, and what the
// kernel tells without one (/proc/net/route, getifaddrs) is read directly.

import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { WeftError } from '../errors.js';
import { loadAddon } from './addon.js';
import { mustRun } from './command.js';

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
  const errno = loadAddon().setAcceptLocal(dev);
  if (errno !== 0) {
    const code = getSystemErrorName(-errno);
    throw new WeftError('WEFT_HOST_SETUP', `cannot set net.ipv4.conf.${dev}.accept_local over rtnetlink: ${code}`, { iface: dev, errno: code });
  }
  // Device names hold no whitespace (the kernel refuses them), so each line splits as written.
  const batch = [
    `link set dev ${dev} mtu ${mtu}${gsoMaxSegs === undefined ? '' : ` gso_max_segs ${gsoMaxSegs}`}`,
    `addr replace ${addrWithPrefix} dev ${dev}`,
    `link set dev ${dev} up`,
  ];
  await mustRun('ip', ['-batch', '-'], `${batch.join('\n')}\n`);
}

interface IpAddrJson {
  ifname: string;
  mtu?: number;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
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
