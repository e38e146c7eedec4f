// A real container runtime puts pods on weft: podman (CNI backend) in each of
// three weftd nodes runs busybox containers through the weft plugin that
// `weftctl cni install` put in place. Addresses from the node's subnet, every
// container and node reaching every other without NAT, 20 parallel starts,
// hostPort, weftd restarts under running containers, and the subnet change.

import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contains, parseCidr, parseIp } from '../../src/net/ipv4.js';
import { rootSkipReason } from '../harness/privilege.js';
import { hostLocalReservations } from '../lab/cni_results.js';
import { WeftCluster } from '../lab/cluster.js';
import type { Podman } from '../lab/podman.js';
import { until } from '../harness/until.js';

const skip = rootSkipReason();
const NODES = [1, 2, 3];

describe.skipIf(skip)(`podman containers on weft${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let c: WeftCluster;
  const pm = new Map<number, Podman>();
  const ip = new Map<number, string>();

  /** busybox ping from inside container `name` on node `node`. */
  const pingFrom = async (node: number, name: string, to: string): Promise<boolean> =>
    (await pm.get(node)!.exec(name, ['ping', '-c', '1', '-W', '2', to], { allowFail: true })).code === 0;

  const eventually = (what: string, f: () => Promise<boolean>): Promise<boolean> => until(what, f, 15_000, 250);

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 3, podsPerNode: 0, name: 'cni-podman' });
    for (const i of NODES) {
      const p = await c.podman(i);
      pm.set(i, p);
      await p.run(`c${i}`, ['sleep', '600'], { capAdd: ['NET_RAW'] });
      ip.set(i, await p.ip(`c${i}`));
    }
  }, 120_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('gives each container an address from its node\'s subnet', () => {
    for (const i of NODES) expect(contains(parseCidr(c.nodes.get(i)!.subnet!), parseIp(ip.get(i)!)), `c${i} ${ip.get(i)}`).toBe(true);
  });

  it('every container reaches every other container and every node, and every node every container', async () => {
    const failed: string[] = [];
    for (const a of NODES) {
      for (const b of NODES) {
        if (a !== b && !(await pingFrom(a, `c${a}`, ip.get(b)!))) failed.push(`c${a} -> c${b} ${ip.get(b)}`);
        if (!(await pingFrom(a, `c${a}`, c.lab.nodeIp(b)))) failed.push(`c${a} -> node${b} ${c.lab.nodeIp(b)}`);
        if (!(await c.lab.ping(c.lab.nodeNs(a), ip.get(b)!, { count: 1, timeoutS: 3 }))) failed.push(`node${a} -> c${b}`);
      }
    }
    expect(failed).toEqual([]);
  });

  it('20 containers started at once get 20 distinct addresses, all released with no veth left after rm', async () => {
    const p = pm.get(1)!;
    const names = Array.from({ length: 20 }, (_, k) => `par${k}`);
    await Promise.all(names.map((n) => p.run(n, ['sleep', '600'], { timeoutMs: 90_000 })));
    const addrs = await Promise.all(names.map((n) => p.ip(n)));
    expect(new Set(addrs).size).toBe(20);
    for (const a of addrs) expect(contains(parseCidr(c.nodes.get(1)!.subnet!), parseIp(a))).toBe(true);
    await Promise.all(names.map((n) => p.rm(n)));
    expect(hostLocalReservations(c.cniOf(1).ipamDir, c.cniOf(1).network)).toEqual([ip.get(1)]);
    expect(await c.lab.bridgePorts(1)).toHaveLength(1);
    expect(readdirSync(join(c.cniOf(1).dataDir, c.cniOf(1).network))).toHaveLength(1);
  }, 180_000);

  it('podman run -p on node 2 is reachable at node 2\'s address from node 1 and from a container on node 1, sources not NATed', async () => {
    const web = pm.get(2)!;
    await web.run('web', ['sh', '-c', 'echo hello-from-node2 > /tmp/index.html && exec httpd -f -v -p 80 -h /tmp'], { publish: ['8080:80'] });
    // From a container: nc (busybox's wget, a static build, crashes resolving here); from a node: Node's http.
    const get = async (node: number, host: string, port: number, fromContainer: boolean): Promise<string> =>
      fromContainer
        ? (await pm.get(node)!.exec(`c${node}`, ['sh', '-c', `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`], { allowFail: true })).stdout
        : (await c.httpGet(node, `http://${host}:${port}/index.html`).catch(() => ({ body: '' }))).body;
    await eventually('hostPort from node 1', async () => (await get(1, c.lab.nodeIp(2), 8080, false)).includes('hello-from-node2'));
    expect(await get(1, c.lab.nodeIp(2), 8080, true)).toContain('hello-from-node2');
    expect(await get(3, await web.ip('web'), 80, true)).toContain('hello-from-node2');
    // busybox httpd -v logs each client's address: the senders' own, no NAT on the way.
    const log = (await web.cli(['logs', 'web'])).stderr + (await web.cli(['logs', 'web'])).stdout;
    for (const from of [c.lab.nodeIp(1), ip.get(1)!, ip.get(3)!]) expect(log, log).toContain(from);
    await web.rm('web');
  });

  it('weftd restarted under running containers (SIGTERM, then SIGKILL): they keep their addresses and traffic resumes', async () => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await c.stopNode(1, signal);
      await c.startNode(1);
      expect(await pm.get(1)!.ip('c1')).toBe(ip.get(1));
      await eventually(`c1 -> c2 after ${signal}`, () => pingFrom(1, 'c1', ip.get(2)!));
      await eventually(`c3 -> c1 after ${signal}`, () => pingFrom(3, 'c3', ip.get(1)!));
    }
  }, 90_000);

  it('a node whose subnet changed under a running container refuses new ones with a message naming both subnets', async () => {
    const before = c.nodes.get(3)!.subnet!;
    await c.stopNode(3, 'SIGKILL');
    // A new identity and no local record: the old lease stays held by node3 until it expires, so the subnet must differ.
    rmSync(join(c.nodeDir(3), 'state'), { recursive: true, force: true });
    const after = (await c.startNode(3, 0, ['--node-name', 'node3-renamed'])).subnet!;
    expect(after).not.toBe(before);
    const r = await pm.get(3)!.run('late', ['sleep', '600'], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the node's subnet is now ${after}`);
    expect(r.stderr).toContain(`earlier subnet ${before}`);
    expect(r.stderr).not.toContain('already has an IP address different');
  }, 60_000);
});
