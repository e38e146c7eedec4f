// The kernel engine's device: a Linux `vxlan gpe external` device that weftd
// creates (or, after a crash, adopts), addresses for this node's subnet and
// removes, over rtnetlink; and the refusals when this kernel or node cannot
// have one. The encap routes through it are encap_routes.ts's.
//
//   <name>  vxlan gpe external dstport <port> [vnifilter], learning off, MTU <mtu>
//           address <subnet>.0/32 (this node's overlay address, as weft0's .0)
//   throw <cluster network> proto 87: a destination no peer's route covers
//           gets ICMP net-unreachable, as from the other engines (with the
//           cluster prefix on the device it would vanish silently)

import { constants } from 'node:os';
import { ENCAP_OVERHEAD } from '../constants.js';
import { WeftError } from '../errors.js';
import { type Cidr, formatCidr } from '../net/ipv4.js';
import { expectDone } from './netlink.js';
import {
  type RtLink,
  type RouteEntry,
  type RtnlStep,
  addressesOf,
  delAddrRequest,
  delLinkRequest,
  getLink,
  mainRoutes,
  newAddrRequest,
  newRouteRequest,
  newVxlanGpeRequest,
  removeRoutes,
  rtnl,
  rtnlSteps,
  setLinkRequest,
  vniFilterRequest,
} from './rtnetlink.js';

const { EEXIST, ENODEV, EOPNOTSUPP, EADDRINUSE } = constants.errno;

/** What the device is configured for. */
export interface DeviceSettings {
  readonly network: Cidr;
  readonly subnet: Cidr;
  readonly mtu: number;
  readonly port: number;
  readonly vni: number;
  /** The underlay's MTU: the device's must leave room for this kernel's idea of the GPE header. */
  readonly underlayMtu: number;
}

function refused(why: string, details: Record<string, unknown> = {}): WeftError {
  return new WeftError('WEFT_ENGINE_REFUSED', `--engine kernel: ${why}`, details);
}

/**
 * The headroom this kernel reserves for VXLAN-GPE: 36 since "vxlan:
 * calculate correct header length for GPE" (94d166c5318c, Linux 6.5 and
 * the stable series of August 2023), 50 before, when a device at the
 * underlay MTU - 36 made the kernel answer full-size TCP segments with a
 * local ICMP too-big and cache a path MTU of 1450. Probed once: a device
 * created over lo (MTU 65536) without an MTU takes lo's less the headroom.
 * The probe is never brought up, so its port binds nothing.
 */
let headroom: number | undefined;
export function gpeHeadroom(): number {
  if (headroom !== undefined) return headroom;
  const lo = getLink('lo');
  if (!lo) throw new WeftError('WEFT_HOST_SETUP', 'no loopback device to probe the kernel\'s VXLAN-GPE headroom with', {});
  const name = `weftp${process.pid.toString(16).slice(-8)}`;
  const [made] = rtnl([newVxlanGpeRequest({ name, port: 1, lowerIndex: lo.index })]);
  if (made!.error === EOPNOTSUPP) throw noVxlan();
  expectDone(made!, 'probe the kernel\'s VXLAN-GPE headroom');
  try {
    headroom = lo.mtu - (getLink(name)?.mtu ?? lo.mtu - ENCAP_OVERHEAD);
  } finally {
    rtnl([delLinkRequest(name)]);
  }
  return headroom;
}

/** Why the device's MTU does not fit the underlay's with this kernel's headroom; undefined when it fits. */
export function mtuProblem(mtu: number, underlayMtu: number, kernelHeadroom: number): string | undefined {
  if (mtu + kernelHeadroom <= underlayMtu) return undefined;
  if (kernelHeadroom <= ENCAP_OVERHEAD) return `MTU ${mtu} leaves no room for the ${ENCAP_OVERHEAD} bytes of VXLAN-GPE on the underlay's ${underlayMtu}: the kernel's device would fragment every full-size packet; give --mtu ${underlayMtu - kernelHeadroom} or less`;
  return `this kernel reckons ${kernelHeadroom} bytes of VXLAN-GPE overhead, not ${ENCAP_OVERHEAD} (it lacks 94d166c5318c "vxlan: calculate correct header length for GPE", Linux 6.5, backported to the stable series in August 2023): at MTU ${mtu} it would resegment every full-size TCP segment; give --mtu ${underlayMtu - kernelHeadroom} (pods get that MTU) or --engine native`;
}

function noVxlan(): WeftError {
  return refused('this kernel has no VXLAN support (the vxlan module is not loaded and cannot be: modprobe vxlan says why); use --engine native', { errno: 'EOPNOTSUPP' });
}

export class VxlanDevice {
  private settings: DeviceSettings | undefined;
  /** The kernel filters VNIs on the device itself (vnifilter, 5.18+). */
  vnifilter = false;

  constructor(
    readonly name: string,
    /** rtm_protocol of weft's routes (constants.ts KERNEL_ROUTE_PROTOCOL). */
    readonly protocol: number,
  ) {}

  /**
   * Creates the device, or adopts the one a crashed weftd left (same name,
   * GPE, external, same port: its routes keep forwarding meanwhile), and
   * configures it: MTU, this node's address alone, the throw route, up.
   * Refusals (WEFT_ENGINE_REFUSED): no VXLAN or no GPE in this kernel, its
   * headroom too large for the MTU, another VXLAN device on the port, the
   * port bound by another program. Returns whether it was adopted.
   */
  configure(s: DeviceSettings): { adopted: boolean; link: RtLink } {
    const problem = mtuProblem(s.mtu, s.underlayMtu, gpeHeadroom());
    if (problem) throw refused(problem, { mtu: s.mtu });
    this.settings = s;
    return this.ensure();
  }

  /** configure() again with the last settings: the device was deleted or set down under weftd. */
  repair(): { adopted: boolean; link: RtLink } {
    if (!this.settings) throw new Error('VxlanDevice.repair() before configure()');
    return this.ensure();
  }

  /** What the kernel says of the device now; undefined when it is gone. */
  link(): RtLink | undefined {
    return getLink(this.name);
  }

  private ensure(): { adopted: boolean; link: RtLink } {
    const s = this.settings!;
    let link = this.link();
    const adopted = link !== undefined && isOurs(link, s.port);
    if (link && !adopted) {
      if (link.kind !== 'vxlan') {
        throw new WeftError('WEFT_HOST_SETUP', `a device ${this.name} of kind ${link.kind ?? 'unknown'} exists and is not weft's VXLAN-GPE device: remove it, or give --tun-name another name`, { iface: this.name });
      }
      // weft's name, another VXLAN setup (the port changed, say): make it afresh.
      rtnlSteps([{ what: `delete the VXLAN device ${this.name} of another port`, req: delLinkRequest(this.name) }]);
    }
    if (!adopted) link = this.create(s);
    const l = link!;
    this.vnifilter = l.vxlan?.vnifilter === true;
    const steps: RtnlStep[] = [];
    if (this.vnifilter) steps.push({ what: `accept VNI ${s.vni} on ${this.name}`, req: vniFilterRequest(l.index, s.vni), ok: [EEXIST] });
    if (l.mtu !== s.mtu) steps.push({ what: `set the MTU of ${this.name} to ${s.mtu}`, req: setLinkRequest(this.name, { mtu: s.mtu }) });
    for (const a of addressesOf(l.index)) {
      if (a.ip !== s.subnet.base || a.prefixLen !== 32) steps.push({ what: `remove an earlier address from ${this.name}`, req: delAddrRequest(a) });
    }
    steps.push({ what: `give ${this.name} the address ${formatCidr({ base: s.subnet.base, len: 32 })}`, req: newAddrRequest({ index: l.index, ip: s.subnet.base, prefixLen: 32 }) });
    steps.push({ what: `route ${formatCidr(s.network)} as throw`, req: newRouteRequest(this.throwRoute(s)) });
    rtnlSteps(steps);
    const [up] = rtnl([setLinkRequest(this.name, { up: true })]);
    if (up!.error === EADDRINUSE) {
      throw refused(`UDP port ${s.port} is already bound on this node (another weftd, a VXLAN device or another program: \`ss -ulpn sport = :${s.port}\` names it); the kernel's device cannot listen there: stop that program, or run weft on another port (weftctl init --port)`, { port: s.port, errno: 'EADDRINUSE' });
    }
    expectDone(up!, `bring ${this.name} up`);
    return { adopted, link: this.link() ?? l };
  }

  private create(s: DeviceSettings): RtLink {
    const [made] = rtnl([newVxlanGpeRequest({ name: this.name, port: s.port, mtu: s.mtu, vnifilter: true })]);
    if (made!.error === EOPNOTSUPP) throw noVxlan();
    if (made!.error === EEXIST) {
      throw refused(`another VXLAN device already listens on UDP port ${s.port} in this network namespace (${made!.extack ?? 'EEXIST'}; \`ip -d link show type vxlan\` lists them): remove it, or run weft on another port (weftctl init --port)`, { port: s.port, errno: 'EEXIST' });
    }
    expectDone(made!, `create the VXLAN-GPE device ${this.name}`);
    const link = this.link();
    if (!link?.vxlan?.gpe || !link.vxlan.external) {
      rtnl([delLinkRequest(this.name)]);
      throw refused('this kernel made a VXLAN device without GPE or metadata mode (VXLAN-GPE needs Linux 4.7 or later); use --engine native');
    }
    return link;
  }

  private throwRoute(s: DeviceSettings): RouteEntry {
    return { dst: s.network.base, len: s.network.len, type: 'throw', protocol: this.protocol };
  }

  /**
   * Deletes the device (its routes go with it) and every other route of
   * weft's protocol in the main table (the throw route, anything a crashed
   * run left on another device); nothing when all are gone already.
   */
  remove(): void {
    rtnlSteps([{ what: `delete ${this.name}`, req: delLinkRequest(this.name), ok: [ENODEV] }]);
    removeRoutes(mainRoutes().filter((r) => r.protocol === this.protocol));
  }
}

function isOurs(link: RtLink, port: number): boolean {
  return link.kind === 'vxlan' && link.vxlan?.gpe === true && link.vxlan.external && link.vxlan.port === port;
}
