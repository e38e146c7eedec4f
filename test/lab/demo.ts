// The demo (npm run demo): etcd and three weftd nodes with two pods each in
// network namespaces; shows the leases, every pod pinging every other pod,
// and a 5 s iperf3 figure across nodes; then deletes everything it made.

import { WeftCluster } from './cluster.js';

const say = (s = ''): void => void process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root: it creates network namespaces and TUN devices');
  say('weft demo: etcd at 198.18.0.254, 3 nodes on 198.18.0.0/24, pods in 198.19.0.0/16 (all in network namespaces)');
  const t0 = Date.now();
  const c = await WeftCluster.create({ nodes: 3, podsPerNode: 2, name: 'demo' });
  try {
    say(`cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    say('$ etcdctl get --prefix /weft');
    say((await c.lab.etcdctl(['get', '--prefix', '/weft'])).trimEnd());
    say('\n$ weftctl leases');
    say((await c.weftctl(['leases'])).trimEnd());

    say('\nping, every pod to every other pod (1 packet each):');
    const pods = c.pods();
    let failures = 0;
    for (const a of pods) {
      const row = await Promise.all(pods.map(async (b) => (a === b ? '  -  ' : (await c.lab.ping(a.ns, b.ip, { count: 1, timeoutS: 3 })) ? ' ok  ' : (failures++, 'FAIL '))));
      say(`  node${a.node} ${a.ip.padEnd(14)} -> ${row.join('')}`);
    }
    say(`  columns: ${pods.map((p) => p.ip).join(', ')}`);

    const server = pods.find((p) => p.node === 3)!;
    const client = pods.find((p) => p.node === 1)!;
    say(`\niperf3 TCP, 5 s, ${client.ip} (node1) -> ${server.ip} (node3), native engine (the default):`);
    const srv = c.lab.spawn(server.ns, ['iperf3', '-s', '-1', '--forceflush', '-B', server.ip]);
    await srv.waitForLog(/Server listening/, 5000);
    const r = await c.lab.exec(client.ns, ['iperf3', '-c', server.ip, '-t', '5', '-J'], { timeoutMs: 30_000 });
    const bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    say(`  ${(bps / 1e9).toFixed(2)} Gbit/s received`);
    say(`\n${failures === 0 ? 'all pods reach each other' : `${failures} ping(s) failed`}; cleaning up`);
    if (failures > 0) process.exitCode = 1;
  } finally {
    await c.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
