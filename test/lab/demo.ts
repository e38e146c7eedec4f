// The demo (npm run demo): etcd and three weftd nodes in network namespaces,
// each with podman attaching two containers through weft's CNI plugin; shows
// the leases, the conflist installed, `podman ps` with the pods' addresses,
// every pod pinging every other pod, and a 5 s iperf3 figure across nodes;
// then deletes everything it made.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftCluster } from './cluster.js';
import type { Podman } from './podman.js';

const say = (s = ''): void => void process.stdout.write(`${s}\n`);
const PODS_PER_NODE = 2;

interface DemoPod {
  node: number;
  name: string;
  ip: string;
  podman: Podman;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root: it creates network namespaces, TUN devices and containers');
  say('weft demo: etcd at 198.18.0.254, 3 nodes on 198.18.0.0/24, pods in 198.19.0.0/16 (all in network namespaces)');
  const t0 = Date.now();
  const c = await WeftCluster.create({ nodes: 3, podsPerNode: 0, name: 'demo' });
  try {
    say(`cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    say('$ etcdctl get --prefix /weft');
    say((await c.lab.etcdctl(['get', '--prefix', '/weft'])).trimEnd());
    say('\n$ weftctl leases');
    say((await c.weftctl(['leases'])).trimEnd());

    const pods: DemoPod[] = [];
    for (const node of [1, 2, 3]) {
      const podman = await c.podman(node);
      for (let k = 1; k <= PODS_PER_NODE; k++) {
        const name = `pod${node}${k}`;
        await podman.run(name, ['sleep', '600'], { capAdd: ['NET_RAW'] });
        pods.push({ node, name, ip: await podman.ip(name), podman });
      }
    }
    const cni = c.cniOf(1);
    say(`\n$ weftctl cni install ...   (on every node; node1's conflist, ${join(cni.confDir, '10-weft.conflist')}):`);
    say(readFileSync(join(cni.confDir, '10-weft.conflist'), 'utf8').trimEnd());
    for (const node of [1, 2, 3]) {
      say(`\n$ podman ps   (node${node}, network ${cni.network})`);
      say((await (await c.podman(node)).ps()).trimEnd());
    }

    say('\nping, every pod to every other pod (1 packet each, from inside the container):');
    let failures = 0;
    for (const a of pods) {
      const row = await Promise.all(
        pods.map(async (b) => {
          if (a === b) return '  -  ';
          const r = await a.podman.exec(a.name, ['ping', '-c', '1', '-W', '3', b.ip], { allowFail: true });
          return r.code === 0 ? ' ok  ' : (failures++, 'FAIL ');
        }),
      );
      say(`  node${a.node} ${a.name} ${a.ip.padEnd(14)} -> ${row.join('')}`);
    }
    say(`  columns: ${pods.map((p) => p.ip).join(', ')}`);

    // iperf3 is not in the busybox containers: it runs in each pod's own network namespace, next to the container.
    const server = pods.find((p) => p.node === 3)!;
    const client = pods.find((p) => p.node === 1)!;
    const netnsOf = async (p: DemoPod): Promise<string> => (await p.podman.inspect(p.name)).netns;
    say(`\niperf3 TCP, 5 s, ${client.ip} (node1 ${client.name}) -> ${server.ip} (node3 ${server.name}), native engine (the default):`);
    const srv = c.lab.spawn(c.lab.nodeNs(3), ['nsenter', `--net=${await netnsOf(server)}`, 'iperf3', '-s', '-1', '--forceflush', '-B', server.ip]);
    await srv.waitForLog(/Server listening/, 5000);
    const r = await c.lab.exec(c.lab.nodeNs(1), ['nsenter', `--net=${await netnsOf(client)}`, 'iperf3', '-c', server.ip, '-t', '5', '-J'], { timeoutMs: 30_000 });
    const bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    say(`  ${(bps / 1e9).toFixed(2)} Gbit/s received`);
    say(`\n${failures === 0 ? 'all pods reach each other' : `${failures} ping(s) failed`}; cleaning up (containers, CNI state, namespaces)`);
    if (failures > 0) process.exitCode = 1;
  } finally {
    await c.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
