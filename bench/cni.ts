// The CNI plugin's cost: wall time of `podman run --rm <busybox> true` through
// weft's plugin against the same conflist with Debian's bridge in weft's place
// (configured as weft renders it, a subnet of the same size; portmap after
// it in both), median
// of N interleaved runs; and each plugin's own time per ADD and per DEL,
// executed as a runtime does (a fresh process in the node's namespace).
// Target (issue 7): weft adds at most 60 ms per pod over bridge alone.
//
// Prints a table and writes bench/results/cni-<date>.json. Root; ~1 min.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { bridgeConfig } from '../src/cni/delegate.js';
import { parseNetConf } from '../src/cni/netconf.js';
import { parseSubnetEnv } from '../src/host/subnet_env.js';
import { callPlugin, pluginConf } from '../test/harness/cni_plugin.js';
import { WeftCluster } from '../test/lab/cluster.js';
import { addNamespace, deleteNamespace } from '../test/lab/netns.js';
import { Podman } from '../test/lab/podman.js';
import { median } from '../test/harness/stats.js';
import { writeResult } from './results.js';

const RUNS = Number(process.env.WEFT_BENCH_CNI_RUNS ?? 20);
const say = (s = ''): void => void process.stdout.write(`${s}\n`);

async function timed(f: () => unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function ok(r: ReturnType<typeof callPlugin>, what: string): void {
  if (r.status !== 0) throw new Error(`${what}: ${JSON.stringify(r.json)} ${r.stderr}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/cni.ts needs root (namespaces, containers)');
  const c = await WeftCluster.create({ nodes: 2, podsPerNode: 0, name: 'bench-cni' });
  const podNs = `${c.lab.prefix}-bench`;
  try {
    // The bridge config weft would delegate for a node, as a conflist of its own.
    const bridgeFor = (node: number, name: string, ipamDir: string): Record<string, unknown> => {
      const conf = parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name, ipamDir }));
      return bridgeConfig(conf, parseSubnetEnv(c.subnetEnvText(node), 'subnet.env'), true);
    };

    // podman: node 1 through weft, node 2 through bridge directly.
    const weft = await c.podman(1);
    const bridgeNet = `bridge-${c.lab.prefix}`;
    const bridgeDir = join(c.nodeDir(2), 'bridge');
    mkdirSync(join(bridgeDir, 'net.d'), { recursive: true });
    const { cniVersion: _v, name: _n, ...plugin } = bridgeFor(2, bridgeNet, join(bridgeDir, 'ipam'));
    writeFileSync(join(bridgeDir, 'net.d', '10-bridge.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: bridgeNet, plugins: [plugin, { type: 'portmap', capabilities: { portMappings: true } }] }));
    const bridge = await Podman.create(c.lab, 2, { network: bridgeNet, confDir: join(bridgeDir, 'net.d'), pluginDirs: ['/usr/lib/cni'] });
    const podmanRun = { weft: [] as number[], bridge: [] as number[] };
    for (let k = 0; k <= RUNS; k++) {
      for (const [name, p] of [['weft', weft], ['bridge', bridge]] as const) {
        const ms = await timed(() => p.run(`t${k}`, ['true'], { detach: false }));
        if (k > 0) podmanRun[name].push(ms); // the first run of each warms caches
      }
    }

    // The plugins alone, in node 1's namespace, on one pod namespace.
    const ns = c.lab.nodeNs(1);
    const cni = c.cniOf(1);
    const weftBin = join(cni.binDir, 'weft');
    const direct = { ...bridgeFor(1, `direct-${c.lab.prefix}`, join(c.nodeDir(1), 'ipam-direct')) };
    const verbs = { weftVersion: [] as number[], weftAdd: [] as number[], weftDel: [] as number[], bridgeAdd: [] as number[], bridgeDel: [] as number[] };
    await addNamespace(podNs);
    for (let k = 0; k < RUNS; k++) {
      const call = { containerId: `bench${k}`, netns: `/run/netns/${podNs}` };
      verbs.weftVersion.push(await timed(() => ok(callPlugin(weftBin, ns, 'VERSION', '', call), 'weft VERSION')));
      verbs.weftAdd.push(await timed(() => ok(callPlugin(weftBin, ns, 'ADD', pluginConf(cni.confDir), call), 'weft ADD')));
      verbs.weftDel.push(await timed(() => ok(callPlugin(weftBin, ns, 'DEL', pluginConf(cni.confDir), call), 'weft DEL')));
      verbs.bridgeAdd.push(await timed(() => ok(callPlugin('/usr/lib/cni/bridge', ns, 'ADD', direct, call), 'bridge ADD')));
      verbs.bridgeDel.push(await timed(() => ok(callPlugin('/usr/lib/cni/bridge', ns, 'DEL', direct, call), 'bridge DEL')));
    }

    const m = (xs: number[]): number => Math.round(median(xs) * 10) / 10;
    const result = {
      date: new Date().toISOString(),
      nproc: cpus().length,
      cpu: cpus()[0]?.model ?? '?',
      kernel: release(),
      runs: RUNS,
      podmanRunMs: { weft: m(podmanRun.weft), bridge: m(podmanRun.bridge), overhead: m(podmanRun.weft) - m(podmanRun.bridge) },
      pluginMs: Object.fromEntries(Object.entries(verbs).map(([k, v]) => [k, m(v)])),
      samples: { podmanRun, verbs },
    };
    say(`weft CNI benchmark: median of ${RUNS}; ${result.nproc} CPUs (${result.cpu}), kernel ${result.kernel}\n`);
    say('| what | weft | bridge alone | weft - bridge |');
    say('| --- | ---: | ---: | ---: |');
    say(`| podman run --rm busybox true | ${result.podmanRunMs.weft} ms | ${result.podmanRunMs.bridge} ms | ${result.podmanRunMs.overhead.toFixed(1)} ms |`);
    say(`| plugin ADD | ${m(verbs.weftAdd)} ms | ${m(verbs.bridgeAdd)} ms | ${(m(verbs.weftAdd) - m(verbs.bridgeAdd)).toFixed(1)} ms |`);
    say(`| plugin DEL | ${m(verbs.weftDel)} ms | ${m(verbs.bridgeDel)} ms | ${(m(verbs.weftDel) - m(verbs.bridgeDel)).toFixed(1)} ms |`);
    say(`| plugin VERSION (answered by sh) | ${m(verbs.weftVersion)} ms | | |`);
    say(`\ntarget: weft adds at most 60 ms per pod over bridge alone: ${result.podmanRunMs.overhead <= 60 ? 'met' : 'NOT met'} (${result.podmanRunMs.overhead.toFixed(1)} ms)`);
    const file = writeResult('cni', result.date, result);
    say(`wrote ${file}`);
  } finally {
    await deleteNamespace(podNs, { allowFail: true });
    await c.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/cni: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
