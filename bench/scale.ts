// The control plane at scale (issue 11), in two parts:
//
//   lease clients  N lease clients (test/harness/lease_fleet.ts: the real
//                  LeaseManager, LeaseKeeper and LeaseWatcher each, its own
//                  etcd lease and watch, sharing a few connections) join at
//                  once against an etcd of this bench's own on 127.0.0.1:
//                  join time, time to converge (every table equal to the live
//                  leases), change propagation p50/p99 (one client leaving as
//                  one joins, seen by every other), etcd CPU seconds and peak
//                  RSS (/proc of its PID), the clients' memory per lease.
//   weftd nodes    for each N, a fresh lab of N nodes with one etcd, every
//                  weftd started at once (no pods): time from the last start
//                  to a full mesh (every weftd's table holds the N-1 others),
//                  each weftd's CPU seconds and RSS at that moment; charted
//                  against N (bench/scale_chart.ts). Every weftd is started
//                  by its bin, as users start it. Beside them the floor:
//                  Node alone and Node loading weftd's modules, with the
//                  bin's flags (CPU, RSS), and weftctl --help's time; then
//                  issue 19's targets against the 30-node row.
//
//   npm run bench:scale         (root for the weftd part)
//   WEFT_BENCH_SCALE_CLIENTS=1000 (0: skip the lease clients) WEFT_BENCH_SCALE_CHANGES=10 WEFT_BENCH_SCALE_CONNECTIONS=10
//   WEFT_BENCH_SCALE_JOIN_TIMEOUT_S=300
//   WEFT_BENCH_SCALE_NODES=10,30,100 (empty: skip the weftd part)
//
// Prints markdown and writes bench/results/scale-<date>.json (and .svg when
// the weftd part ran). Every wait is bounded; etcd and every lab are
// stopped on every path.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { startEtcd } from '../test/harness/etcd_server.js';
import { runScale, type ScaleResult } from '../test/harness/lease_fleet.js';
import { median } from '../test/harness/stats.js';
import { sleep } from '../test/harness/until.js';
import { WEFTCTL, WEFTD, WeftCluster, weftdEvents, weftdNodeFlags } from '../test/lab/cluster.js';
import { intEnv } from './env.js';
import { cpuModel, machineBusyS, processCpuS, vmHwmMB, vmRssMB } from './proc.js';
import { writeResult } from './results.js';
import { scaleChart, type NodeRow } from './scale_chart.js';

const say = (s = ''): void => void process.stdout.write(`${s}\n`);

const CLIENTS = intEnv('WEFT_BENCH_SCALE_CLIENTS', 1000, 0);
const CHANGES = intEnv('WEFT_BENCH_SCALE_CHANGES', 10, 1);
const CONNECTIONS = intEnv('WEFT_BENCH_SCALE_CONNECTIONS', 10, 1);
const JOIN_TIMEOUT_S = intEnv('WEFT_BENCH_SCALE_JOIN_TIMEOUT_S', 300, 10);
const NODES = (process.env.WEFT_BENCH_SCALE_NODES ?? '10,30,100')
  .split(',')
  .filter((s) => s.trim() !== '')
  .map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 2 || n > 250) throw new Error(`WEFT_BENCH_SCALE_NODES: "${s}" is not an integer in 2..250`);
    return n;
  });
/** How long every weftd may take to be ready and meshed, per node started (2 CPUs shared by all of them). */
const MESH_MS_PER_NODE = 3000;

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

interface ClientPart extends ScaleResult {
  readonly etcd: { readonly cpuS: number; readonly peakRssMB: number; readonly rssMB: number };
  readonly machineBusyS: number;
  readonly wallMs: number;
}

async function leaseClients(): Promise<ClientPart> {
  const etcd = await startEtcd();
  try {
    const cpu0 = processCpuS(etcd.pid);
    const busy0 = machineBusyS();
    const t0 = Date.now();
    const r = await runScale({
      endpoints: [etcd.endpoint],
      prefix: '/weft-bench-scale',
      clients: CLIENTS,
      changes: CHANGES,
      connections: CONNECTIONS,
      joinTimeoutMs: JOIN_TIMEOUT_S * 1000,
      ttlS: 3600,
      resyncIntervalMs: 300_000,
      convergeTimeoutMs: 60_000,
      changeTimeoutMs: 30_000,
    });
    return {
      ...r,
      etcd: { cpuS: round(processCpuS(etcd.pid) - cpu0, 2), peakRssMB: round(vmHwmMB(etcd.pid)), rssMB: round(vmRssMB(etcd.pid)) },
      machineBusyS: round(machineBusyS() - busy0, 2),
      wallMs: Date.now() - t0,
    };
  } finally {
    await etcd.stop();
  }
}

/** Distinct peers node i's weftd has added and not removed since it started (from its log). */
function peersOf(c: WeftCluster, i: number): number {
  const peers = new Set<string>();
  for (const e of weftdEvents(c.nodes.get(i)!.weftd!)) {
    if (e.event === 'peer_added') peers.add(String(e.node));
    else if (e.event === 'peer_removed') peers.delete(String(e.node));
  }
  return peers.size;
}

async function weftdNodes(n: number): Promise<NodeRow> {
  const c = await WeftCluster.create({ nodes: n, podsPerNode: 0, name: `bench-scale-${n}`, startNodes: false, flags: ['--queues', '1'] });
  try {
    const budgetMs = n * MESH_MS_PER_NODE;
    const busy0 = machineBusyS();
    // startNode spawns (weftd's bin) before its first await: every weftd is started when this loop ends.
    const firstStart = Date.now();
    const ready = Array.from({ length: n }, (_, k) => c.startNode(k + 1, 0, [], undefined, budgetMs));
    // The spawns compete for the CPUs with the weftd already spawned: at N = 100 the last comes seconds after the first.
    const lastStart = Date.now();
    ready.forEach((p) => p.catch(() => undefined));
    await Promise.all(ready);
    const allReadyMs = Date.now() - lastStart;
    const nodes = Array.from({ length: n }, (_, k) => k + 1);
    let meshMs: number | undefined;
    let spawnMs = 0;
    while (Date.now() - lastStart < budgetMs) {
      if (nodes.every((i) => peersOf(c, i) >= n - 1)) {
        meshMs = Date.now() - lastStart;
        spawnMs = lastStart - firstStart;
        break;
      }
      await sleep(100);
    }
    if (meshMs === undefined) {
      const short = nodes.filter((i) => peersOf(c, i) < n - 1).map((i) => `node${i}: ${peersOf(c, i)}`);
      throw new Error(`${n} weftd: no full mesh ${budgetMs} ms after the last start (${short.slice(0, 10).join(', ')})`);
    }
    const pids = nodes.map((i) => c.nodes.get(i)!.weftd!.pid);
    const cpu = pids.map(processCpuS);
    const rss = pids.map(vmRssMB);
    return {
      nodes: n,
      allReadyMs,
      meshMs,
      spawnMs,
      weftdCpuS: { median: round(median(cpu), 2), max: round(Math.max(...cpu), 2) },
      weftdRssMB: { median: round(median(rss)), max: round(Math.max(...rss)) },
      etcdPeakRssMB: round(vmHwmMB(c.lab.etcdProcess.pid)),
      machineBusyS: round(machineBusyS() - busy0, 1),
    };
  } finally {
    await c.destroy();
  }
}

/** What running a command to its end costs: wall time, CPU seconds (user + system) and peak RSS (GNU time), medians of 5. */
interface RunCost {
  readonly wallS: number;
  readonly cpuS: number;
  readonly rssMB: number;
}

function costOfRun(argv: readonly string[]): RunCost {
  const runs = Array.from({ length: 5 }, () => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', ...argv], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'ignore', 'pipe'] });
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const [user, sys, kb] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
    if (r.status !== 0 || ![user, sys, kb].every(Number.isFinite)) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
    return { wallS, cpuS: user! + sys!, rssMB: kb! / 1024 };
  });
  const med = (f: (r: RunCost) => number, digits: number): number => round(median(runs.map(f)), digits);
  return { wallS: med((r) => r.wallS, 3), cpuS: med((r) => r.cpuS, 3), rssMB: med((r) => r.rssMB, 1) };
}

interface StartFloor {
  /** Node alone with the bin's flags (`node <flags> -e 0`). */
  readonly node: RunCost;
  /** weftd's bin loading every module it runs, then printing its help (`weftd --help`). */
  readonly modules: RunCost;
  /** `weftctl --help`, the command an operator runs most. */
  readonly weftctlHelp: RunCost;
}

/** What a weftd spends before it does any work: the floor under the start cost and memory the nodes' rows show. */
function startFloor(): StartFloor {
  return {
    node: costOfRun([process.execPath, ...weftdNodeFlags(), '-e', '0']),
    modules: costOfRun([WEFTD, '--help']),
    weftctlHelp: costOfRun([WEFTCTL, '--help']),
  };
}

/** Issue 19's targets, for 30 weftd started at once by their bin, each against the floor beside it. */
function printTargets(r: NodeRow, floor: StartFloor): void {
  const met = (ok: boolean): string => (ok ? 'met' : 'not met');
  say(`\n## Targets (issue 19), ${r.nodes} weftd started by their bin\n`);
  say('| target | figure | floor beside it |');
  say('| --- | ---: | --- |');
  say(`| full mesh <= 5 s after the last start | ${round(r.meshMs / 1000, 2)} s: ${met(r.meshMs <= 5000)} | every start's CPU on ${cpus().length} CPUs: ${r.nodes} x ${r.weftdCpuS.median} s / ${cpus().length} = ${round((r.nodes * r.weftdCpuS.median) / cpus().length, 2)} s |`);
  say(`| each weftd <= 45 MB RSS | median ${r.weftdRssMB.median} / max ${r.weftdRssMB.max} MB: ${met(r.weftdRssMB.max <= 45)} | Node alone ${floor.node.rssMB} MB; with weftd's modules loaded ${floor.modules.rssMB} MB |`);
  say(`| start <= 0.25 CPU-s | median ${r.weftdCpuS.median} / max ${r.weftdCpuS.max} s: ${met(r.weftdCpuS.max <= 0.25)} | Node alone ${floor.node.cpuS} s; with weftd's modules loaded ${floor.modules.cpuS} s |`);
  say(`| weftctl --help <= 0.15 s | ${floor.weftctlHelp.wallS} s: ${met(floor.weftctlHelp.wallS <= 0.15)} | Node alone ${floor.node.wallS} s |`);
}

function printClients(clients: ClientPart): void {
  say(`## ${clients.clients} lease clients (${CONNECTIONS} shared etcd connections, one etcd on 127.0.0.1, ${clients.network})\n`);
  say('| figure | value |');
  say('| --- | ---: |');
  say(`| join (first start to last client's first table) | ${clients.joinMs} ms |`);
  say(`| etcd calls the joins retried (no answer in 60 s, or refused) | ${Object.values(clients.joinRetries).reduce((a, b) => a + b, 0)} |`);
  say(`| convergence (last join to every table equal to the live leases) | ${clients.convergeMs ?? 'NOT within 60 s'}${clients.convergeMs === null ? '' : ' ms'} |`);
  say(`| change propagation p50 / p99 / max (${clients.propagation.samples} samples, ${CHANGES} changes) | ${clients.propagation.p50Ms} / ${clients.propagation.p99Ms} / ${clients.propagation.maxMs} ms |`);
  say(`| one change: this process's CPU / wall time until the last client saw it / garbage-collection pauses (medians) | ${clients.propagation.cpuMsPerChange} / ${clients.propagation.wallMsPerChange} / ${clients.propagation.gcMsPerChange} ms |`);
  say(`| clients that never saw a change | ${clients.propagation.unseen} |`);
  say(`| subnets held twice | ${clients.doubles.length} |`);
  say(`| etcd CPU (whole run) / peak RSS / RSS at end | ${clients.etcd.cpuS} s / ${clients.etcd.peakRssMB} MB / ${clients.etcd.rssMB} MB |`);
  say(`| machine busy CPU (whole run, ${round(clients.wallMs / 1000)} s) | ${clients.machineBusyS} s |`);
  say(`| clients' memory per lease held (RSS / JS heap) | ${clients.perClient.rssKiB} KiB / ${clients.perClient.heapKiB} KiB |`);
  say(`| clients' CPU per client, first join to convergence | ${clients.perClient.cpuMs} ms |`);
  for (const [why, n] of Object.entries(clients.joinRetries)) say(`\nretried ${n} x: ${why}`);
  if (clients.doubles.length || clients.problems.length || clients.unconverged.length) {
    say(`\nproblems: ${JSON.stringify({ doubles: clients.doubles, problems: clients.problems.slice(0, 10), unconverged: clients.unconverged })}`);
  }
}

async function main(): Promise<void> {
  if (NODES.length > 0 && process.getuid?.() !== 0) throw new Error('bench/scale.ts: the weftd part needs root (namespaces, TUN); WEFT_BENCH_SCALE_NODES= skips it');
  const date = new Date().toISOString();
  const env = { date, nproc: cpus().length, cpu: cpuModel(), kernel: release(), loadavgAtStart: loadavg().map((x) => round(x, 2)) };
  say(`weft scale benchmark: ${env.nproc} CPUs (${env.cpu}), kernel ${env.kernel}, load ${env.loadavgAtStart.join(' ')}\n`);

  const clients = CLIENTS > 0 ? await leaseClients() : undefined;
  if (clients) printClients(clients);

  const floor = NODES.length > 0 ? startFloor() : undefined;
  const rows: NodeRow[] = [];
  for (const n of NODES) {
    rows.push(await weftdNodes(n));
    say(`${n} weftd: full mesh ${rows.at(-1)!.meshMs} ms after the last start`);
  }
  if (rows.length) {
    say('\n## weftd nodes (one lab each, one etcd, all started at once, no pods)\n');
    say('| nodes | first to last start | last start to all ready | last start to full mesh | weftd CPU s median / max | weftd RSS MB median / max | etcd peak RSS MB | machine busy CPU s, first start to full mesh |');
    say('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) say(`| ${r.nodes} | ${r.spawnMs} ms | ${r.allReadyMs} ms | ${r.meshMs} ms | ${r.weftdCpuS.median} / ${r.weftdCpuS.max} | ${r.weftdRssMB.median} / ${r.weftdRssMB.max} | ${r.etcdPeakRssMB} | ${r.machineBusyS} |`);
    const f = floor!;
    say(`\nBefore any work, with the bin's Node flags (median of 5 each): Node alone (node -e 0) ${f.node.cpuS} CPU-s, ${f.node.rssMB} MB peak RSS, ${f.node.wallS} s; weftd's bin loading its modules (weftd --help) ${f.modules.cpuS} CPU-s, ${f.modules.rssMB} MB, ${f.modules.wallS} s; weftctl --help ${f.weftctlHelp.cpuS} CPU-s, ${f.weftctlHelp.rssMB} MB, ${f.weftctlHelp.wallS} s.`);
    const target = rows.find((r) => r.nodes === 30);
    if (target) printTargets(target, f);
    else say('\n(issue 19\'s targets are for 30 nodes: add 30 to WEFT_BENCH_SCALE_NODES)');
  }

  const file = writeResult('scale', date, { ...env, method: 'bench/README.md', clients: clients && { ...clients, connections: CONNECTIONS, changes: CHANGES }, nodes: rows, startFloor: floor });
  say(`\nwrote ${file}`);
  if (rows.length) {
    const chart = file.replace(/\.json$/, '.svg');
    writeFileSync(chart, scaleChart(rows, `weftd nodes started at once, ${date.slice(0, 16)} UTC, ${env.nproc} x ${env.cpu}`));
    say(`wrote ${chart}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/scale: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
