// Which underlay this node is reached at: the address and MTU from
// --public-ip / --iface / --mtu, else the default-route interface's.

import { ENCAP_OVERHEAD } from '../constants.js';
import { WeftError } from '../errors.js';
import { defaultRouteInterface, interfaceInfo, interfaceWithAddress } from './netconf.js';

/**
 * The underlay address, its MTU and interface. With --public-ip and --mtu
 * but no interface holding the address (a NAT'd public address, say), the
 * MTU given stands for the TUN's and no interface is named.
 */
export async function findUnderlay(o: { readonly publicIp?: string; readonly iface?: string; readonly mtu?: number }): Promise<{ ip: string; mtu: number; iface?: string }> {
  const iface = o.iface ?? (o.publicIp ? interfaceWithAddress(o.publicIp) : await defaultRouteInterface());
  if (!iface) {
    if (o.publicIp && o.mtu) return { ip: o.publicIp, mtu: o.mtu + ENCAP_OVERHEAD };
    throw new WeftError('WEFT_NO_PUBLIC_IP', o.publicIp ? `no interface holds --public-ip ${o.publicIp}; give --iface or --mtu` : 'no default route to find the underlay interface; give --iface or --public-ip', {});
  }
  const info = interfaceInfo(iface);
  return { ip: o.publicIp ?? info.ip, mtu: info.mtu, iface };
}
