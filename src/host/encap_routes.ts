// The kernel engine's routes: one encap route per peer of the lease table
// through its VXLAN-GPE device (`<subnet> encap ip id <vni> dst <public ip>
// csum dev <device> proto 87`), kept in step with each table by a diff (only
// the peers that changed are written), marked with weft's protocol number so
// that a restarted weftd finds and reconciles what an earlier one left.

import { constants } from 'node:os';
import { type Cidr, formatCidr, formatIp } from '../net/ipv4.js';
import { answerText } from './netlink.js';
import { type RouteEntry, delRouteRequest, mainRoutes, newRouteRequest, removeRoutes, rtnl } from './rtnetlink.js';

const { ESRCH } = constants.errno;

/** Where each subnet (by its base address) is sent: a peer's public IP and the VNI. */
export interface EncapTarget {
  readonly remote: number;
  readonly vni: number;
}

export type EncapMap = ReadonlyMap<number, EncapTarget>;

/** What turns `installed` into `want`: the subnets to (re)write, the subnets to delete. Pure. */
export function encapChanges(installed: EncapMap, want: EncapMap): { put: number[]; remove: number[] } {
  const put: number[] = [];
  const remove: number[] = [];
  for (const [base, t] of want) {
    const had = installed.get(base);
    if (!had || had.remote !== t.remote || had.vni !== t.vni) put.push(base);
  }
  for (const base of installed.keys()) if (!want.has(base)) remove.push(base);
  return { put, remove };
}

/** A route the kernel refused, and why. */
export interface RouteFailure {
  readonly subnet: string;
  readonly remote: string;
  readonly error: string;
}

export class EncapRoutes {
  private readonly installed = new Map<number, EncapTarget>();

  constructor(
    private readonly o: {
      /** weft's rtm_protocol. */
      readonly protocol: number;
      /** The length of every peer's subnet. */
      readonly subnetLen: number;
      /** The cluster network: its throw route belongs to the device, never to these. */
      readonly network: Cidr;
    },
  ) {}

  /** The routes installed now, by subnet base. */
  get routes(): EncapMap {
    return this.installed;
  }

  /**
   * Takes over the encap routes of weft's protocol through device `oif`
   * that the kernel holds (an earlier weftd crashed: they kept forwarding);
   * deletes every other route of weft's protocol but the cluster's throw
   * route (another device, another length: nothing a table can hold).
   */
  adopt(oif: number): void {
    const stale: RouteEntry[] = [];
    for (const r of mainRoutes()) {
      if (r.protocol !== this.o.protocol || (r.type === 'throw' && r.dst === this.o.network.base && r.len === this.o.network.len)) continue;
      if (r.type === 'unicast' && r.oif === oif && r.len === this.o.subnetLen && r.encap) this.installed.set(r.dst, r.encap);
      else stale.push(r);
    }
    removeRoutes(stale);
  }

  /**
   * Writes what differs between the routes installed and `want`; with
   * `exact`, also deletes the routes `want` lacks. Returns what the kernel
   * refused (those subnets are tried again with the next table).
   */
  apply(want: EncapMap, oif: number, exact: boolean): RouteFailure[] {
    const { put, remove } = encapChanges(this.installed, want);
    return this.write(put.map((base) => [base, want.get(base)!] as const), exact ? remove : [], oif);
  }

  /** Writes every installed route again: the device was made afresh, or set down (which drops its routes). */
  rewrite(oif: number): RouteFailure[] {
    return this.write([...this.installed], [], oif);
  }

  private write(put: readonly (readonly [number, EncapTarget])[], remove: readonly number[], oif: number): RouteFailure[] {
    const { protocol, subnetLen: len } = this.o;
    const requests = [
      ...put.map(([dst, encap]) => newRouteRequest({ dst, len, type: 'unicast', protocol, oif, encap })),
      ...remove.map((dst) => delRouteRequest({ dst, len, protocol })),
    ];
    const failures: RouteFailure[] = [];
    rtnl(requests).forEach((a, i) => {
      const deleting = i >= put.length;
      const base = deleting ? remove[i - put.length]! : put[i]![0];
      if (a.error === 0 || (deleting && a.error === ESRCH)) {
        if (deleting) this.installed.delete(base);
        else this.installed.set(base, put[i]![1]);
        return;
      }
      if (!deleting) this.installed.delete(base);
      failures.push({ subnet: formatCidr({ base, len }), remote: deleting ? '' : formatIp(put[i]![1].remote), error: answerText(a) });
    });
    return failures;
  }
}
