// rtnetlink, as weftd speaks it: the requests for links (a VXLAN-GPE device,
// up/MTU, delete), a device's IPv4 settings, addresses, routes (encap and
// throw) and VNI filters, built as bytes by pure functions, and the parsers
// of what the kernel answers (links, addresses, routes). The few functions
// at the end hold a conversation (netlink.ts). KERNEL_ENGINE.md A.3 decodes
// the messages iproute2 sends for the same jobs; these match them.

import { constants } from 'node:os';
import { WeftError } from '../errors.js';
import { formatCidr } from '../net/ipv4.js';
import {
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  type NlAnswer,
  type NlMessage,
  type NlRequest,
  attr,
  attrString,
  be16Attr,
  be32Attr,
  be64Attr,
  expectDone,
  flagAttr,
  nested,
  netlinkTransact,
  parseAttrs,
  strAttr,
  u16Attr,
  u32Attr,
  u8Attr,
} from './netlink.js';

const AF_INET = 2;
const AF_BRIDGE = 7;

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const RTM_NEWTUNNEL = 120;

const IFF_UP = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_STATS64 = 23;
const IFLA_AF_SPEC = 26;
const IFLA_GSO_MAX_SEGS = 40;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INET_CONF = 1;
const IPV4_DEVCONF_ACCEPT_LOCAL = 23;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_COLLECT_METADATA = 25;
const IFLA_VXLAN_GPE = 27;
const IFLA_VXLAN_VNIFILTER = 30;
const VXLAN_VNIFILTER_ENTRY = 1;
const VXLAN_VNIFILTER_ENTRY_START = 1;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;
const RTA_ENCAP_TYPE = 21;
const RTA_ENCAP = 22;
const LWTUNNEL_ENCAP_IP = 2;
const LWTUNNEL_IP_ID = 1;
const LWTUNNEL_IP_DST = 2;
const LWTUNNEL_IP_FLAGS = 6;
/** The tunnel flag asking for the outer UDP checksum (TUNNEL_CSUM, as a be16). */
const TUNNEL_CSUM = 0x0001;
export const RT_TABLE_MAIN = 254;
const RTN_UNICAST = 1;
const RTN_THROW = 9;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
/** An address only this host reaches (127.0.0.1 on lo). */
export const RT_SCOPE_HOST = 254;
/** In a delete: any scope. */
const RT_SCOPE_NOWHERE = 255;

/**
 * IFLA_IFNAME for `name`, refused (EINVAL) when no device can have it: the
 * kernel would cut it at a NUL or refuse it, naming nothing useful.
 */
function ifname(name: string): Buffer {
  if (!/^[^\0/\s:]{1,15}$/.test(name) || Buffer.byteLength(name) > 15) {
    throw new WeftError('WEFT_HOST_SETUP', `"${name.replace(/\0/g, '\\0')}" is not a valid interface name (1-15 bytes, no NUL, '/', ':' or space)`, { errno: 'EINVAL' });
  }
  return strAttr(IFLA_IFNAME, name);
}

const ifinfomsg = (index = 0, flags = 0, change = 0): Buffer => {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
};

// ---- links

/** What the kernel says of a link over rtnetlink (netconf.ts's LinkInfo is what `ip` prints of one). */
export interface RtLink {
  readonly index: number;
  readonly name: string;
  readonly up: boolean;
  readonly mtu: number;
  /** IFLA_INFO_KIND: 'vxlan', 'tun', 'bridge'...; undefined for a device without one. */
  readonly kind?: string;
  /** A VXLAN device's settings. */
  readonly vxlan?: { readonly port: number; readonly gpe: boolean; readonly external: boolean; readonly vnifilter: boolean; readonly learning: boolean };
  /** The device's own counters (IFLA_STATS64): rx is what it decapsulated, tx what it encapsulated. */
  readonly stats?: LinkStats;
}

export interface LinkStats {
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly rxErrors: number;
  readonly txErrors: number;
  readonly rxDropped: number;
  readonly txDropped: number;
}

export function getLinkRequest(name: string): NlRequest {
  return { type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_ACK, body: Buffer.concat([ifinfomsg(), ifname(name)]) };
}

export interface VxlanGpeSpec {
  readonly name: string;
  /** The UDP port it listens on and sends to. */
  readonly port: number;
  /** Omitted: the kernel's choice (underlay MTU less its headroom with `lowerIndex`, else 1500). */
  readonly mtu?: number;
  /** Accept only the VNIs added with vniFilterRequest (kernel 5.18+). */
  readonly vnifilter?: boolean;
  /** The device the headroom is reckoned from (IFLA_VXLAN_LINK). */
  readonly lowerIndex?: number;
}

/**
 * A `vxlan gpe external` device: GPE, metadata-based (each route's encap
 * names VNI and remote), learning off. The kernel turns learning on unless
 * told, and refuses it with GPE: IFLA_VXLAN_LEARNING=0 is mandatory.
 */
export function newVxlanGpeRequest(s: VxlanGpeSpec): NlRequest {
  const data = [flagAttr(IFLA_VXLAN_GPE), u8Attr(IFLA_VXLAN_COLLECT_METADATA, 1), u8Attr(IFLA_VXLAN_LEARNING, 0), be16Attr(IFLA_VXLAN_PORT, s.port)];
  if (s.vnifilter) data.push(u8Attr(IFLA_VXLAN_VNIFILTER, 1));
  if (s.lowerIndex !== undefined) data.push(u32Attr(IFLA_VXLAN_LINK, s.lowerIndex));
  const attrs = [ifname(s.name), ...(s.mtu === undefined ? [] : [u32Attr(IFLA_MTU, s.mtu)]), nested(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, Buffer.from('vxlan')), nested(IFLA_INFO_DATA, data, false)], false)];
  return { type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body: Buffer.concat([ifinfomsg(), ...attrs]) };
}

/** Changes a link's state, MTU and GSO segment bound, by name (`ip link set`). */
export function setLinkRequest(name: string, o: { readonly up?: boolean; readonly mtu?: number; readonly gsoMaxSegs?: number }): NlRequest {
  const attrs = [...(o.mtu === undefined ? [] : [u32Attr(IFLA_MTU, o.mtu)]), ...(o.gsoMaxSegs === undefined ? [] : [u32Attr(IFLA_GSO_MAX_SEGS, o.gsoMaxSegs)])];
  const body = Buffer.concat([ifinfomsg(0, o.up ? IFF_UP : 0, o.up === undefined ? 0 : IFF_UP), ifname(name), ...attrs]);
  return { type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK, body };
}

export function delLinkRequest(name: string): NlRequest {
  return { type: RTM_DELLINK, flags: NLM_F_REQUEST | NLM_F_ACK, body: Buffer.concat([ifinfomsg(), ifname(name)]) };
}

/** net.ipv4.conf.<name>.accept_local = 1, without /proc/sys (IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF). */
export function acceptLocalRequest(name: string): NlRequest {
  const conf = nested(IFLA_AF_SPEC, [nested(AF_INET, [nested(IFLA_INET_CONF, [u32Attr(IPV4_DEVCONF_ACCEPT_LOCAL, 1)])])]);
  return { type: RTM_SETLINK, flags: NLM_F_REQUEST | NLM_F_ACK, body: Buffer.concat([ifinfomsg(), ifname(name), conf]) };
}

/** Adds `vni` to a `vnifilter` device's list (what `bridge vni add` sends). */
export function vniFilterRequest(index: number, vni: number): NlRequest {
  const tunnelmsg = Buffer.alloc(8);
  tunnelmsg[0] = AF_BRIDGE;
  tunnelmsg.writeUInt32LE(index, 4);
  return { type: RTM_NEWTUNNEL, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, body: Buffer.concat([tunnelmsg, nested(VXLAN_VNIFILTER_ENTRY, [u32Attr(VXLAN_VNIFILTER_ENTRY_START, vni)])]) };
}

const u64 = (b: Buffer, at: number): number => Number(b.readBigUInt64LE(at));

export function parseLink(m: NlMessage): RtLink {
  const attrs = parseAttrs(m.body, 16);
  const flags = m.body.readUInt32LE(8);
  const info = attrs.get(IFLA_LINKINFO);
  const infoAttrs = info ? parseAttrs(info) : undefined;
  const kind = attrString(infoAttrs?.get(IFLA_INFO_KIND));
  const data = kind === 'vxlan' ? infoAttrs?.get(IFLA_INFO_DATA) : undefined;
  const stats = attrs.get(IFLA_STATS64);
  const mtu = attrs.get(IFLA_MTU);
  let vxlan: RtLink['vxlan'];
  if (data) {
    const v = parseAttrs(data);
    const on = (t: number): boolean => (v.get(t)?.[0] ?? 0) !== 0;
    vxlan = { port: v.get(IFLA_VXLAN_PORT)?.readUInt16BE(0) ?? 0, gpe: v.has(IFLA_VXLAN_GPE), external: on(IFLA_VXLAN_COLLECT_METADATA), vnifilter: on(IFLA_VXLAN_VNIFILTER), learning: on(IFLA_VXLAN_LEARNING) };
  }
  return {
    index: m.body.readInt32LE(4),
    name: attrString(attrs.get(IFLA_IFNAME)) ?? '',
    up: (flags & IFF_UP) !== 0,
    mtu: mtu && mtu.length >= 4 ? mtu.readUInt32LE(0) : 0,
    ...(kind === undefined ? {} : { kind }),
    ...(vxlan ? { vxlan } : {}),
    ...(stats && stats.length >= 64
      ? {
          stats: {
            rxPackets: u64(stats, 0),
            txPackets: u64(stats, 8),
            rxBytes: u64(stats, 16),
            txBytes: u64(stats, 24),
            rxErrors: u64(stats, 32),
            txErrors: u64(stats, 40),
            rxDropped: u64(stats, 48),
            txDropped: u64(stats, 56),
          },
        }
      : {}),
  };
}

// ---- addresses

export interface AddressEntry {
  readonly index: number;
  readonly ip: number;
  readonly prefixLen: number;
}

function addrBody(a: AddressEntry): Buffer {
  const ifaddrmsg = Buffer.alloc(8);
  ifaddrmsg[0] = AF_INET;
  ifaddrmsg[1] = a.prefixLen;
  ifaddrmsg.writeUInt32LE(a.index, 4);
  return Buffer.concat([ifaddrmsg, be32Attr(IFA_LOCAL, a.ip), be32Attr(IFA_ADDRESS, a.ip)]);
}

/** Adds the address, or leaves it as it is when the device holds it already (`ip addr replace`). */
export function newAddrRequest(a: AddressEntry): NlRequest {
  return { type: RTM_NEWADDR, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body: addrBody(a) };
}

export function delAddrRequest(a: AddressEntry): NlRequest {
  return { type: RTM_DELADDR, flags: NLM_F_REQUEST | NLM_F_ACK, body: addrBody(a) };
}

export function dumpAddrsRequest(): NlRequest {
  const ifaddrmsg = Buffer.alloc(8);
  ifaddrmsg[0] = AF_INET;
  return { type: RTM_GETADDR, flags: NLM_F_REQUEST | NLM_F_DUMP, body: ifaddrmsg };
}

/** An IPv4 address as the kernel lists it: with its scope (ifa_scope: RT_SCOPE_HOST, link, universe...). */
export interface ListedAddress extends AddressEntry {
  readonly scope: number;
}

export function parseAddr(m: NlMessage): ListedAddress | undefined {
  if (m.body.length < 8 || m.body[0] !== AF_INET) return undefined;
  const attrs = parseAttrs(m.body, 8);
  const ip = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  return ip && ip.length >= 4 ? { index: m.body.readUInt32LE(4), ip: ip.readUInt32BE(0), prefixLen: m.body[1]!, scope: m.body[3]! } : undefined;
}

// ---- routes

/**
 * An IPv4 route in the main table (the only one weftd writes or reads):
 * `unicast` with an encap (`<dst>/<len> encap ip id <vni> dst <remote> csum
 * dev <oif>`), or `throw <dst>/<len>` (a destination no more specific route
 * covers gets net-unreachable).
 */
export interface RouteEntry {
  readonly dst: number;
  readonly len: number;
  readonly type: 'unicast' | 'throw' | 'other';
  /** rtm_protocol: who installed it (weft marks its routes with its own number). */
  readonly protocol: number;
  readonly oif?: number;
  readonly encap?: { readonly vni: number; readonly remote: number };
}

/** Adds or replaces `r` (NLM_F_REPLACE: same destination, TOS and metric in the table). */
export function newRouteRequest(r: RouteEntry): NlRequest {
  const throwing = r.type === 'throw';
  // In iproute2's order, so the bytes compare with `ip route add`'s.
  const attrs = [be32Attr(RTA_DST, r.dst)];
  if (r.encap) {
    attrs.push(nested(RTA_ENCAP, [be64Attr(LWTUNNEL_IP_ID, BigInt(r.encap.vni)), be32Attr(LWTUNNEL_IP_DST, r.encap.remote), be16Attr(LWTUNNEL_IP_FLAGS, TUNNEL_CSUM)]));
    attrs.push(u16Attr(RTA_ENCAP_TYPE, LWTUNNEL_ENCAP_IP));
  }
  if (r.oif !== undefined) attrs.push(u32Attr(RTA_OIF, r.oif));
  const body = Buffer.concat([rtmsg(r.len, r.protocol, throwing ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK, throwing ? RTN_THROW : RTN_UNICAST), ...attrs]);
  return { type: RTM_NEWROUTE, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body };
}

/** Deletes the main table's route to `dst/len` installed with `protocol`, whatever its type, scope or device. */
export function delRouteRequest(r: Pick<RouteEntry, 'dst' | 'len' | 'protocol'>): NlRequest {
  return { type: RTM_DELROUTE, flags: NLM_F_REQUEST | NLM_F_ACK, body: Buffer.concat([rtmsg(r.len, r.protocol, RT_SCOPE_NOWHERE, 0), be32Attr(RTA_DST, r.dst)]) };
}

export function dumpRoutesRequest(): NlRequest {
  return { type: RTM_GETROUTE, flags: NLM_F_REQUEST | NLM_F_DUMP, body: rtmsg(0, 0, 0, 0, 0) };
}

function rtmsg(dstLen: number, protocol: number, scope: number, type: number, table = RT_TABLE_MAIN): Buffer {
  return Buffer.from([AF_INET, dstLen, 0, 0, table, protocol, scope, type, 0, 0, 0, 0]);
}

/** An IPv4 route of the main table; undefined for another family's or another table's. */
export function parseRoute(m: NlMessage): RouteEntry | undefined {
  if (m.body.length < 12 || m.body[0] !== AF_INET) return undefined;
  const attrs = parseAttrs(m.body, 12);
  const table = attrs.get(RTA_TABLE);
  if ((table && table.length >= 4 ? table.readUInt32LE(0) : m.body[4]!) !== RT_TABLE_MAIN) return undefined;
  const dst = attrs.get(RTA_DST);
  const oif = attrs.get(RTA_OIF);
  const rtType = m.body[7]!;
  let encap: RouteEntry['encap'];
  const e = attrs.get(RTA_ENCAP);
  if (e && attrs.get(RTA_ENCAP_TYPE)?.readUInt16LE(0) === LWTUNNEL_ENCAP_IP) {
    const ea = parseAttrs(e);
    const id = ea.get(LWTUNNEL_IP_ID);
    const remote = ea.get(LWTUNNEL_IP_DST);
    if (id && id.length >= 8 && remote && remote.length >= 4) encap = { vni: Number(id.readBigUInt64BE(0)), remote: remote.readUInt32BE(0) };
  }
  return {
    dst: dst && dst.length >= 4 ? dst.readUInt32BE(0) : 0,
    len: m.body[1]!,
    type: rtType === RTN_UNICAST ? 'unicast' : rtType === RTN_THROW ? 'throw' : 'other',
    protocol: m.body[5]!,
    ...(oif && oif.length >= 4 ? { oif: oif.readUInt32LE(0) } : {}),
    ...(encap ? { encap } : {}),
  };
}

// ---- conversations

/** rtnetlink requests, answered in order. */
export function rtnl(requests: readonly NlRequest[]): NlAnswer[] {
  return netlinkTransact(NETLINK_ROUTE, requests);
}

/** One request of a batch: what it does (named when it fails), and the errnos that count as done for it (EEXIST, say). */
export interface RtnlStep {
  readonly what: string;
  readonly req: NlRequest;
  readonly ok?: readonly number[];
}

/** Sends `steps` in one conversation, each answered on its own; throws WEFT_HOST_SETUP naming the first whose errno its `ok` does not allow. */
export function rtnlSteps(steps: readonly RtnlStep[]): void {
  rtnl(steps.map((s) => s.req)).forEach((a, i) => {
    if (!steps[i]!.ok?.includes(a.error)) expectDone(a, steps[i]!.what);
  });
}

/** The link called `name`; undefined when there is none. */
export function getLink(name: string): RtLink | undefined {
  const [a] = rtnl([getLinkRequest(name)]);
  if (a!.error === constants.errno.ENODEV) return undefined;
  const m = expectDone(a!, `get link ${name}`).messages[0];
  return m ? parseLink(m) : undefined;
}

/** Every IPv4 route of the main table (the kernel's dump, retried once when it changed meanwhile). */
export function mainRoutes(): RouteEntry[] {
  for (let tries = 0; ; tries++) {
    const a = expectDone(rtnl([dumpRoutesRequest()])[0]!, 'list routes');
    if (a.interrupted && tries < 3) continue;
    return a.messages.map(parseRoute).filter((r): r is RouteEntry => r !== undefined);
  }
}

/** Deletes `routes`; a route already gone is no error. */
export function removeRoutes(routes: readonly RouteEntry[]): void {
  rtnlSteps(routes.map((r) => ({ what: `delete the route to ${formatCidr({ base: r.dst, len: r.len })}`, req: delRouteRequest(r), ok: [constants.errno.ESRCH] })));
}

/** The IPv4 addresses on the device with index `index`, in the kernel's order (`ip -4 addr show`'s). */
export function addressesOf(index: number): ListedAddress[] {
  const a = expectDone(rtnl([dumpAddrsRequest()])[0]!, 'list addresses');
  return a.messages.map(parseAddr).filter((x): x is ListedAddress => x !== undefined && x.index === index);
}
