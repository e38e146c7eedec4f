// The real seams weftd runs on: the kernel's TUN and UDP (through the addon
// and Node's dgram), its VXLAN-GPE device (rtnetlink), iproute2, nftables or
// iptables, an flock, systemd. Only weftd's entry wires these in.

import type { Logger } from 'pino';
import { KERNEL_ROUTE_PROTOCOL, NATIVE_MAX_TSO_SEGMENTS } from '../constants.js';
import { JsEngine } from '../dataplane/js_engine.js';
import { KernelEngine } from '../dataplane/kernel_engine.js';
import { NativeEngine } from '../dataplane/native_engine.js';
import { WeftError } from '../errors.js';
import { TUN_MULTI_QUEUE, TUN_VNET_HDR } from '../host/addon.js';
import { DgramUdp } from '../host/dgram_udp.js';
import { installEncapFilter, removeEncapFilter } from '../host/encap_filter.js';
import { InstanceLock } from '../host/instance_lock.js';
import { installMasquerade, ipForwarding, removeMasquerade } from '../host/masquerade.js';
import { configureTun, setTunMtu } from '../host/netconf.js';
import { KernelTun } from '../host/tun.js';
import { findUnderlay } from '../host/underlay.js';
import { VxlanDevice } from '../host/vxlan_device.js';
import { formatIp } from '../net/ipv4.js';
import type { DaemonOptions } from './options.js';
import type { ConfiguredDevice, Dataplane, DataplaneDevice, DeviceConfig, HostNetwork } from './seams.js';

export const kernelHost: HostNetwork = {
  lockInstance: (stateDir, nodeName) => InstanceLock.acquire(stateDir, nodeName),
  underlay: findUnderlay,
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

/**
 * The device for the engine chosen: for js one plain TUN queue; for native a
 * queue per worker, with vnet headers if offloading; for kernel a VXLAN-GPE
 * device, whose engine logs what it repairs to `log`.
 */
export function kernelDataplane(o: EngineChoice, log: Logger): Dataplane {
  return { open: () => (o.engine === 'js' ? jsDevice(o) : o.engine === 'kernel' ? vxlanDevice(o, log) : nativeDevice(o)) };
}

/** A TUN's configuration: the subnet's network address with the cluster prefix (the kernel routes the whole network into it), the MTU, up. */
async function configureTunFor(name: string, c: DeviceConfig, gsoMaxSegs?: number): Promise<ConfiguredDevice> {
  const address = `${formatIp(c.subnet.base)}/${c.network.len}`;
  await configureTun(name, address, c.mtu, gsoMaxSegs);
  return { kind: 'tun', name, mtu: c.mtu, address };
}

function jsDevice(o: EngineChoice): DataplaneDevice {
  const tun = KernelTun.open(o.tunName);
  return {
    tunName: tun.name,
    configure: (c) => configureTunFor(tun.name, c),
    setMtu: (mtu) => setTunMtu(tun.name, mtu),
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
    // The kernel's super-packets fit the engine's segment limit.
    configure: (c) => configureTunFor(queues[0]!.name, c, o.offload ? NATIVE_MAX_TSO_SEGMENTS : undefined),
    setMtu: (mtu) => setTunMtu(queues[0]!.name, mtu),
    createEngine: (cfg, initial) => new NativeEngine(cfg, queues, { vnetHdr: o.offload, udpGso: o.udpGso, udpGro: o.udpGro }, initial),
    close: () => queues.forEach((q) => q.close()),
  };
}

function vxlanDevice(o: EngineChoice, log: Logger): DataplaneDevice {
  const device = new VxlanDevice(o.tunName, KERNEL_ROUTE_PROTOCOL);
  return {
    tunName: o.tunName,
    configure: async (c) => {
      const { adopted } = device.configure({ network: c.network, subnet: c.subnet, mtu: c.mtu, port: c.port, vni: c.vni, underlayMtu: c.underlay.mtu });
      log.info({ event: 'kernel_device', device: o.tunName, adopted, vnifilter: device.vnifilter, port: c.port, mtu: c.mtu }, `${adopted ? 'adopted' : 'created'} the VXLAN-GPE device ${o.tunName} (port ${c.port}, MTU ${c.mtu}, vnifilter ${device.vnifilter})`);
      return { kind: 'vxlan', name: o.tunName, mtu: c.mtu, address: `${formatIp(c.subnet.base)}/32` };
    },
    // The kernel engine never encrypts (weftd refuses it while the cluster does), so its MTU never changes.
    setMtu: () => Promise.reject(new WeftError('WEFT_ENGINE_REFUSED', '--engine kernel cannot encrypt')),
    createEngine: (cfg, initial) => new KernelEngine(cfg, { device, log }, initial),
    close: () => device.remove(),
  };
}
