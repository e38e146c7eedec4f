// A lab node run by the Linux kernel itself instead of weftd: a `vxlan gpe
// external` device (vxgpe0) with one encap route per other node's subnet, and
// a SubnetLease in etcd so that weftd nodes route to it. It is the reference
// peer of the interop test and the `kernel` row of the benchmarks: same
// wire format (docs/architecture.md, "Wire format"), same topology, same MTU.
//
//   pod eth0 -> cni0 <subnet>.1/24 -> vxgpe0 <subnet>.0/16 -> route
//   <other subnet>/24 encap ip id <vni> dst <other node> -> UDP <port> on eth0
//
// Everything lives in the node's namespace (the lab deletes it); the etcd
// lease is granted with a long TTL and disappears with the lab's etcd.

import { POD_NETWORK, PREFIX, WeftCluster } from './cluster.js';
import { DEFAULT_POD_MTU, type Lab } from './lab.js';
import { ipIn } from './netns.js';
import { addressLikeWeftTun, parseSubnet } from './overlay_node.js';

export const KERNEL_DEV = 'vxgpe0';
/** Lease TTL for kernel nodes: they never renew, so longer than any run. */
export const KERNEL_LEASE_TTL_S = 86_400;

export interface KernelNodeOptions {
  /** The node's pod subnet, e.g. 198.19.200.0/24: a subnet of the cluster network. */
  subnet: string;
  /** Pods to create on the node's bridge (cni0); 0 for none. */
  pods: number;
  /** VNI of the encap routes and the lease; default: the cluster config's (else 1). */
  vni?: number;
  /**
   * Where to turn TX checksum offload off (`ethtool -K <dev> tx off`) so that
   * the inner TCP/UDP checksums this node sends are finished. Over a veth
   * underlay the kernel hands encapsulated packets over with the inner
   * checksum still partial (a veth hands it over unfinished and nothing completes it):
   * another kernel accepts them, but a userspace receiver (weftd) gets bad
   * TCP checksums, so ping works while TCP stalls in both directions.
   * Measured here, any one of these fixes it:
   *   'underlay' (default): the node's eth0, where a real NIC would finish
   *              the checksum; pods keep TSO;
   *   'device':  vxgpe0 itself;
   *   'pods':    each pod's eth0 (also turns the pods' TSO off);
   *   'none':    leave offloads alone (kernel-to-kernel only, e.g. the
   *              benchmark's kernel row).
   */
  txChecksumOff?: 'underlay' | 'device' | 'pods' | 'none';
  /** Outer UDP checksum on its encap routes (`csum`), as weft's kernel engine sets it; default off, the kernel's default. */
  outerChecksum?: boolean;
}

export interface KernelNode {
  readonly index: number;
  readonly ns: string;
  /** Underlay address, 198.18.0.<index>. */
  readonly ip: string;
  /** e.g. 198.19.200.0/24 */
  readonly subnet: string;
  readonly vni: number;
  readonly port: number;
  /** Pod namespaces on this node. */
  readonly pods: string[];
  /** etcd key of its SubnetLease. */
  readonly leaseKey: string;
  /** etcd lease id (hex) the key is attached to. */
  readonly leaseId: string;
  /**
   * Re-reads every SubnetLease and makes vxgpe0's encap routes match: adds
   * (or updates) a route per other node's subnet, deletes routes of subnets
   * no longer leased. Returns the routed subnets -> underlay IPs.
   */
  refreshRoutes(): Promise<Map<string, string>>;
  /** The routes installed by the last refresh, subnet -> underlay IP. */
  routes(): ReadonlyMap<string, string>;
}

export interface SubnetLeaseValue {
  nodeName: string;
  publicIp: string;
  port?: number;
  vni?: number;
  version?: string;
  engine?: string;
}

interface NetworkConfigValue {
  network: string;
  subnetLen?: number;
  vni?: number;
  port?: number;
}

const SUBNETS_PREFIX = `${PREFIX}/network/subnets/`;

/** `/weft/network/subnets/198.19.200.0-24` -> `198.19.200.0/24` */
export function subnetOfKey(key: string): string {
  const m = /\/network\/subnets\/(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(key);
  if (!m) throw new Error(`not a subnet lease key: ${key}`);
  return `${m[1]}/${m[2]}`;
}

export function keyOfSubnet(subnet: string): string {
  return `${SUBNETS_PREFIX}${subnet.replace('/', '-')}`;
}

/**
 * Writes a SubnetLease by hand, as another agent would: a fresh etcd lease
 * of `ttlS`, and the key created only if it does not exist (a transaction,
 * as weftd does). Returns the etcd lease ID (hex), or undefined when the
 * subnet is taken.
 */
export async function createLeaseIfFree(lab: Lab, subnet: string, value: SubnetLeaseValue, ttlS: number): Promise<string | undefined> {
  const key = keyOfSubnet(subnet);
  const granted = await lab.etcdctl(['lease', 'grant', String(ttlS)]);
  const leaseId = /lease ([0-9a-f]+) granted/.exec(granted)?.[1];
  if (!leaseId) throw new Error(`lease for ${key}: etcdctl lease grant said: ${granted.trim()}`);
  // etcdctl txn splits its lines like a shell would only for double quotes
  // (strconv.Unquote); a single-quoted value arrives cut at the first '"'.
  const txn = `create("${key}") = "0"\n\nput --lease=${leaseId} ${key} ${JSON.stringify(JSON.stringify(value))}\n\n\n`;
  const out = (await lab.etcdctl(['txn'], { stdin: txn })).trim();
  if (/^SUCCESS/.test(out)) return leaseId;
  if (!/^FAILURE/.test(out)) throw new Error(`lease for ${key}: etcdctl txn said: ${out}`);
  await lab.etcdctl(['lease', 'revoke', leaseId]);
  return undefined;
}

/** Parses `etcdctl get` output (key and value lines alternating). */
export function parseEtcdctlGet(out: string): { key: string; value: string }[] {
  const lines = out.split('\n');
  while (lines.length && lines.at(-1) === '') lines.pop();
  const kvs: { key: string; value: string }[] = [];
  for (let k = 0; k + 1 < lines.length; k += 2) kvs.push({ key: lines[k]!, value: lines[k + 1]! });
  return kvs;
}

/** Every SubnetLease in etcd, subnet -> value (values that do not parse are skipped). */
export async function readLeases(c: WeftCluster): Promise<Map<string, SubnetLeaseValue>> {
  const leases = new Map<string, SubnetLeaseValue>();
  for (const { key, value } of parseEtcdctlGet(await c.lab.etcdctl(['get', '--prefix', SUBNETS_PREFIX]))) {
    try {
      const v = JSON.parse(value) as SubnetLeaseValue;
      if (typeof v.publicIp === 'string') leases.set(subnetOfKey(key), v);
    } catch {
      // a malformed lease is weftd's problem to report, not ours to route
    }
  }
  return leases;
}

async function readConfig(c: WeftCluster): Promise<NetworkConfigValue | undefined> {
  const [kv] = parseEtcdctlGet(await c.lab.etcdctl(['get', `${PREFIX}/network/config`]));
  return kv ? (JSON.parse(kv.value) as NetworkConfigValue) : undefined;
}

/**
 * Turns lab node `i` (added if the lab has fewer) into a kernel VXLAN-GPE
 * node: vxgpe0 (MTU = pod MTU) with the subnet's network address and the
 * cluster prefix, its SubnetLease in etcd (created only if the key is free),
 * encap routes to every node already leased, and `opts.pods` pods. Register
 * it in `c.nodes` (weftd undefined) so `c.pods()` lists its pods.
 */
export async function startKernelNode(c: WeftCluster, i: number, opts: KernelNodeOptions): Promise<KernelNode> {
  const lab = c.lab;
  while (lab.nodeCount < i) await lab.addNode();
  if (c.nodes.get(i)?.weftd) throw new Error(`node ${i} runs weftd; a kernel node needs a node of its own`);
  const ns = lab.nodeNs(i);
  const ip = lab.nodeIp(i);

  const { network, prefixLen } = parseSubnet(opts.subnet);
  const config = await readConfig(c);
  const clusterNet = config?.network ?? POD_NETWORK;
  if (config?.subnetLen !== undefined && config.subnetLen !== prefixLen) {
    throw new Error(`startKernelNode(${i}): subnet ${opts.subnet} is not a /${config.subnetLen} as the cluster config says`);
  }
  const vni = opts.vni ?? config?.vni ?? 1;
  const port = config?.port || 4790;

  // The device: metadata-based ("external") VXLAN-GPE; the route's encap
  // gives the VNI and the remote per destination. iproute2 6.1 takes `gpe`
  // and `external` in either order; one such device per namespace and port.
  await ipIn(ns, ['link', 'add', KERNEL_DEV, 'type', 'vxlan', 'gpe', 'external', 'dstport', String(port)]);
  const podMtu = DEFAULT_POD_MTU;
  await addressLikeWeftTun(ns, KERNEL_DEV, opts.subnet, podMtu, clusterNet);

  const value: SubnetLeaseValue = { nodeName: `kernel${i}`, publicIp: ip, port, vni, version: 'kernel', engine: 'kernel' };
  const leaseId = await createLeaseIfFree(lab, opts.subnet, value, KERNEL_LEASE_TTL_S);
  if (!leaseId) throw new Error(`startKernelNode(${i}): ${keyOfSubnet(opts.subnet)} is taken`);

  const installed = new Map<string, string>();
  const refreshRoutes = async (): Promise<Map<string, string>> => {
    const want = new Map<string, string>();
    for (const [subnet, lease] of await readLeases(c)) {
      if (subnet === opts.subnet) continue;
      if ((lease.port || 4790) !== port) {
        throw new Error(`node ${i} (kernel): ${subnet} is leased with port ${lease.port}; a kernel vxlan device sends to one port (${port})`);
      }
      want.set(subnet, lease.publicIp);
    }
    for (const [subnet, dst] of want) {
      if (installed.get(subnet) === dst) continue;
      await ipIn(ns, ['route', 'replace', subnet, 'encap', 'ip', 'id', String(vni), 'dst', dst, ...(opts.outerChecksum ? ['csum'] : []), 'dev', KERNEL_DEV]);
      installed.set(subnet, dst);
    }
    for (const subnet of [...installed.keys()]) {
      if (want.has(subnet)) continue;
      await ipIn(ns, ['route', 'del', subnet, 'dev', KERNEL_DEV]);
      installed.delete(subnet);
    }
    return new Map(installed);
  };
  await refreshRoutes();

  const state = c.nodes.get(i) ?? { weftd: undefined, subnet: undefined, pods: [] as string[] };
  state.subnet = opts.subnet;
  c.nodes.set(i, state);
  if (opts.pods > 0 && state.pods.length === 0) {
    state.pods = await lab.addPods(i, opts.pods, { network, prefixLen }, podMtu);
  }

  const txOff = opts.txChecksumOff ?? 'underlay';
  if (txOff === 'underlay') await lab.exec(ns, ['ethtool', '-K', 'eth0', 'tx', 'off']);
  if (txOff === 'device') await lab.exec(ns, ['ethtool', '-K', KERNEL_DEV, 'tx', 'off']);
  if (txOff === 'pods') for (const pod of state.pods) await lab.exec(pod, ['ethtool', '-K', 'eth0', 'tx', 'off']);

  return {
    index: i,
    ns,
    ip,
    subnet: opts.subnet,
    vni,
    port,
    pods: state.pods,
    leaseKey: keyOfSubnet(opts.subnet),
    leaseId,
    refreshRoutes,
    routes: () => installed,
  };
}
