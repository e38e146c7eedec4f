// Lab nodes joined by tinc 1.0 (Debian's `tinc`) instead of weftd: the
// benchmark's `tinc` row, a userspace tunnel users pick instead of weft. One
// tincd per node namespace, router mode, a meta connection from every node
// to every other over the underlay, and data packets in UDP with no
// encryption, no MAC and no compression, so it is a fair unencrypted tunnel
// beside weft's VXLAN-GPE:
//
//   pod eth0 -> cni0 <subnet>.1/24 -> tinc0 <subnet>.0/16 (TUN) -> tincd ->
//   UDP 655 on eth0 -> the tincd whose host file has `Subnet = <dst>/24`
//
// The wire overhead is IPv4 20 + UDP 8 + tinc's sequence number 4 + the
// Ethernet header tinc 1.0 carries even in router mode 14 = 46 bytes, so
// the pods and tinc0 get MTU 1454 (the lab's weft pods: 1464). Path MTU
// discovery is off and the path MTU fixed at what the underlay carries:
// with discovery on, tinc sends every packet above the MTU found so far
// over its TCP meta connection until the probes finish, a slow start that is
// not the tunnel's steady state. The configuration, keys (RSA, which the meta
// connection needs even with `Cipher = none`) and pid files live in the
// lab's directory; tincd runs in the foreground (-D), a lab process stopped
// by PID when the lab is destroyed.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import { UNDERLAY_MTU } from './lab.js';
import { addressLikeWeftTun, parseSubnet, planSubnet, waitPodsReach, type TunnelNode } from './overlay_node.js';

export const TINC_DEV = 'tinc0';
export const TINC_PORT = 655;
/** IPv4 + UDP + sequence number + Ethernet header. */
export const TINC_OVERHEAD = 20 + 8 + 4 + 14;
export const TINC_POD_MTU = UNDERLAY_MTU - TINC_OVERHEAD;
const RSA_BITS = 2048;
const READY_TIMEOUT_MS = 10_000;

/** What makes tinc a plain unencrypted tunnel; in every host file, so both ends of a link agree. */
const HOST_OPTIONS = [
  'Cipher = none',
  'Digest = none',
  'Compression = 0',
  'PMTUDiscovery = no',
  // tinc's path MTU counts the Ethernet header it carries.
  `PMTU = ${TINC_POD_MTU + 14}`,
];

/** The commands the tinc nodes need, for missingCommand(). */
export const TINC_COMMANDS = [{ command: 'tincd', pkg: 'tinc' }];

/**
 * Runs tincd on every node of the lab (1..lab.nodeCount), node i with pod
 * subnet planSubnet(i) and `podsPerNode` pods at MTU TINC_POD_MTU; resolves
 * once every node's first pod pings every other node's.
 */
export async function startTincNodes(lab: Lab, podsPerNode: number): Promise<TunnelNode[]> {
  const indexes = Array.from({ length: lab.nodeCount }, (_, k) => k + 1);
  const name = (i: number): string => `node${i}`;
  const confDir = (i: number): string => join(lab.dir, 'tinc', name(i));

  for (const i of indexes) {
    await mkdir(join(confDir(i), 'hosts'), { recursive: true });
    const conf = [`Name = ${name(i)}`, 'Mode = router', 'AddressFamily = ipv4', `Interface = ${TINC_DEV}`, `Port = ${TINC_PORT}`];
    for (const j of indexes) if (j !== i) conf.push(`ConnectTo = ${name(j)}`);
    await writeFile(join(confDir(i), 'tinc.conf'), `${conf.join('\n')}\n`);
    const host = [`Address = ${lab.nodeIp(i)}`, `Port = ${TINC_PORT}`, `Subnet = ${planSubnet(i)}`, ...HOST_OPTIONS];
    await writeFile(join(confDir(i), 'hosts', name(i)), `${host.join('\n')}\n`);
    // Not a terminal on stdin: tincd -K writes rsa_key.priv and appends the
    // public key to hosts/<Name> without asking.
    await lab.exec(lab.nodeNs(i), ['tincd', '-c', confDir(i), `-K${RSA_BITS}`], { timeoutMs: 30_000 });
  }
  for (const i of indexes) {
    const hostFile = await readFile(join(confDir(i), 'hosts', name(i)), 'utf8');
    for (const j of indexes) if (j !== i) await writeFile(join(confDir(j), 'hosts', name(i)), hostFile);
  }

  const nodes: TunnelNode[] = [];
  for (const i of indexes) {
    const ns = lab.nodeNs(i);
    const proc = lab.spawn(ns, ['tincd', '-c', confDir(i), '-D', `--pidfile=${join(confDir(i), 'tincd.pid')}`]);
    // "Ready" comes after tincd has opened its TUN.
    await proc.waitForLog(/Ready/, READY_TIMEOUT_MS);
    const subnet = planSubnet(i);
    await addressLikeWeftTun(ns, TINC_DEV, subnet, TINC_POD_MTU);
    const pods = podsPerNode > 0 ? await lab.addPods(i, podsPerNode, parseSubnet(subnet), TINC_POD_MTU) : [];
    nodes.push({ index: i, ns, ip: lab.nodeIp(i), subnet, dev: TINC_DEV, pods, process: proc });
  }
  await waitPodsReach(lab, nodes);
  return nodes;
}
