// The real seams weftd runs on: the kernel's TUN and UDP (through the addon
// and Node's dgram), iproute2, nftables or iptables, an flock, systemd.
// Only weftd's entry wires these in.

import { NATIVE_MAX_TSO_SEGMENTS } from '../constants.js';
import { JsEngine } from '../dataplane/js_engine.js';
import { NativeEngine } from '../dataplane/native_engine.js';
import { TUN_MULTI_QUEUE, TUN_VNET_HDR } from '../host/addon.js';
import { DgramUdp } from '../host/dgram_udp.js';
import { installEncapFilter, removeEncapFilter } from '../host/encap_filter.js';
import { InstanceLock } from '../host/instance_lock.js';
import { installMasquerade, ipForwarding, removeMasquerade } from '../host/masquerade.js';
import { configureTun, setTunMtu } from '../host/netconf.js';
import { KernelTun } from '../host/tun.js';
import { findUnderlay } from '../host/underlay.js';
import { formatIp } from '../net/ipv4.js';
import type { DaemonOptions } from './options.js';
import type { Dataplane, DataplaneDevice, HostNetwork } from './seams.js';

export const kernelHost: HostNetwork = {
  lockInstance: (stateDir, nodeName) => InstanceLock.acquire(stateDir, nodeName),
  underlay: findUnderlay,
  configureTun,
  setTunMtu,
  ipForwarding,
  installEncapFilter: async (network, port) => {
    const backend = await installEncapFilter(network, port);
    return { backend, remove: () => removeEncapFilter(backend, port) };
  },
  installMasquerade: async (network, subnet) => {
    const backend = await installMasquerade(network, subnet);
    return { backend, remove: () => removeMasquerade(backend) };
  },
};

type EngineChoice = Pick<DaemonOptions, 'engine' | 'tunName' | 'queues' | 'offload' | 'udpGso' | 'udpGro'>;

/** The kernel TUN for the engine chosen: one plain queue for js; for native a queue per worker, with vnet headers if offloading. */
export function kernelDataplane(o: EngineChoice): Dataplane {
  return { open: () => (o.engine === 'js' ? jsDevice(o) : nativeDevice(o)) };
}

function jsDevice(o: EngineChoice): DataplaneDevice {
  const tun = KernelTun.open(o.tunName);
  return {
    tunName: tun.name,
    gsoMaxSegs: undefined,
    createEngine: (cfg, initial) => new JsEngine(cfg, tun, new DgramUdp(formatIp(cfg.bindIp), cfg.port), initial, (port) => new DgramUdp(formatIp(cfg.bindIp), port, 0)),
    close: () => tun.close(),
  };
}

function nativeDevice(o: EngineChoice): DataplaneDevice {
  const flags = TUN_MULTI_QUEUE | (o.offload ? TUN_VNET_HDR : 0);
  const queues: KernelTun[] = [];
  try {
    for (let i = 0; i < o.queues; i++) queues.push(KernelTun.open(queues[0]?.name ?? o.tunName, flags));
  } catch (err) {
    for (const q of queues) q.close();
    throw err;
  }
  return {
    tunName: queues[0]!.name,
    gsoMaxSegs: o.offload ? NATIVE_MAX_TSO_SEGMENTS : undefined,
    createEngine: (cfg, initial) => new NativeEngine(cfg, queues, { vnetHdr: o.offload, udpGso: o.udpGso, udpGro: o.udpGro }, initial),
    close: () => queues.forEach((q) => q.close()),
  };
}
