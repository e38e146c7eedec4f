// End-to-end benchmark on the lab (bench/README.md: the performance method): pod to
// pod across two nodes, side by side in one run with the Linux kernel doing
// the same job. One row per dataplane, each on a fresh lab of 2 nodes x 1 pod
// (client pod on node 1, server pod on node 2, underlay MTU 1500; pod MTU
// 1464, or what the row's tunnel leaves of 1500):
//
//   kernel          both nodes are kernel `vxlan gpe external` devices with
//                   encap routes, built by hand (test/lab/kernel_node.ts);
//                   `kernel csum` (WEFT_BENCH_KERNEL_CSUM=1) the same with
//                   the outer UDP checksum on, as weftd's kernel engine sets it
//   weft <engine>   both nodes run weftd --engine <engine> [flags] (`weft
//                   kernel`: the same kernel device, programmed by weftd); with
//                   WEFT_BENCH_TECHNIQUES=1 also native with each of its
//                   techniques switched off (--offload, --udp-gso, --udp-gro)
//   weft <engine> wireguard
//                   both nodes run weftd --engine <engine> in a cluster made
//                   with `weftctl init --encryption wireguard` (pod MTU 1440):
//                   the WireGuard protocol between weft nodes, beside
//                   wireguard-go's row (WEFT_BENCH_ENCRYPTED, default native,js)
//   tinc            tinc 1.0, Cipher and Digest none (test/lab/tinc_node.ts)
//   wireguard-go    userspace WireGuard (test/lab/wireguard_node.ts)
//
// Measured per row: iperf3 TCP (1 stream and -P 4), median of N runs; iperf3
// UDP with 64-byte payloads at full rate (-u -b 0 -l 64), received packets/s,
// median of N runs; ping RTT (50 x 10 ms); the tunnel daemons' CPU seconds
// (utime + stime of both weftd, tincd or wireguard-go processes) and machine
// CPU seconds (all CPUs, /proc/stat) per GB received during the TCP runs;
// the daemons' peak RSS (VmHWM). Every figure is also given as a ratio to
// the kernel row of the same run. A row whose programs are not installed is
// skipped with the reason printed.
//
//   npm run build:ts && npx tsx bench/e2e.ts     (root)
//   WEFT_BENCH_SECONDS=10 WEFT_BENCH_REPEATS=3 WEFT_BENCH_ENGINES=kernel,native,js
//   WEFT_BENCH_TUNNELS=tinc,wireguard-go WEFT_BENCH_TECHNIQUES=1 WEFT_BENCH_ENCRYPTED=native,js
//   WEFT_BENCH_KERNEL_CSUM=1
//
// Prints a markdown table and writes bench/results/e2e-<date>.json and a
// chart of the ratios beside it (.svg). Every iperf3 is bounded (-t plus an
// exec timeout); every lab is destroyed on every path (and by the lab's
// exit/signal handlers if this process dies).

import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { WEFTD, WeftCluster } from '../test/lab/cluster.js';
import { startKernelNode } from '../test/lab/kernel_node.js';
import { Lab, type LabProcess } from '../test/lab/lab.js';
import { missingCommand, planSubnet, type TunnelNode } from '../test/lab/overlay_node.js';
import { startTincNodes, TINC_COMMANDS } from '../test/lab/tinc_node.js';
import { startWireguardNodes, WG_COMMANDS } from '../test/lab/wireguard_node.js';
import { intEnv } from './env.js';
import { cpuModel, machineBusyS, processCpuS, vmHwmMB } from './proc.js';
import { chartTitle, isKernelReference, ratioChart } from './ratio_chart.js';
import { writeResult } from './results.js';
import { median } from '../test/harness/stats.js';

const IPERF_PORT = 5201;
const PING_COUNT = 50;
const PING_INTERVAL_S = 0.01;
const UDP_PAYLOAD = 64;

const say = (s = ''): void => void process.stdout.write(`${s}\n`);
const warn = (s: string): void => void process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------
// settings

const SECONDS = intEnv('WEFT_BENCH_SECONDS', 10, 1);
const REPEATS = intEnv('WEFT_BENCH_REPEATS', 3, 1);
const listEnv = (name: string, dflt: string): string[] =>
  (process.env[name] ?? dflt)
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);

const ENGINES = listEnv('WEFT_BENCH_ENGINES', 'kernel,native,js');
/** The engines given an encrypted row too ("weft native wireguard"); the kernel engine cannot encrypt. */
const ENCRYPTED = listEnv('WEFT_BENCH_ENCRYPTED', 'native,js');
/** WEFT_BENCH_KERNEL_CSUM=1: also the hand-built kernel pair with the outer UDP checksum on, what `weft kernel` is held to beside the reference. */
const KERNEL_CSUM = process.env.WEFT_BENCH_KERNEL_CSUM === '1';
for (const e of ENCRYPTED) {
  if (e !== 'native' && e !== 'js') throw new Error(`WEFT_BENCH_ENCRYPTED: the engines that encrypt are native and js, not "${e}"`);
}

interface OtherTunnel {
  /** What must be on PATH, else the row is skipped. */
  commands: readonly { command: string; pkg: string }[];
  /** Builds the tunnel on every node of the lab, with that many pods per node. */
  start: (lab: Lab, podsPerNode: number) => Promise<TunnelNode[]>;
  /** Prints the version (first line), for the JSON. */
  version: readonly [string, ...string[]];
}

/** The userspace tunnels users would pick instead of weft, each a row on the same lab layout. */
const TUNNELS: Record<string, OtherTunnel> = {
  tinc: { commands: TINC_COMMANDS, start: startTincNodes, version: ['tincd', '--version'] },
  'wireguard-go': { commands: WG_COMMANDS, start: startWireguardNodes, version: ['wireguard-go', '--version'] },
};
const OTHER_TUNNELS = listEnv('WEFT_BENCH_TUNNELS', Object.keys(TUNNELS).join(','));
for (const t of OTHER_TUNNELS) {
  if (!TUNNELS[t]) throw new Error(`WEFT_BENCH_TUNNELS: no tunnel "${t}" (there are ${Object.keys(TUNNELS).join(', ')})`);
}

/** The native engine with each of its techniques switched off, one at a time (WEFT_BENCH_TECHNIQUES=1). */
const TECHNIQUES_OFF = ['native:--offload=false', 'native:--udp-gso=false', 'native:--udp-gro=false'];
const TECHNIQUES = process.env.WEFT_BENCH_TECHNIQUES === '1';

// ---------------------------------------------------------------------------
// results

interface Series {
  runs: number[];
  median: number;
}

interface RowResult {
  name: string;
  engine: string;
  tcp1Gbps: Series;
  tcp4Gbps: Series;
  udpRxPps: Series;
  udpTxPps: Series;
  ping: { minMs: number; avgMs: number; maxMs: number; mdevMs: number; sent: number; received: number };
  /** CPU seconds of both tunnel daemons (weftd, tincd, wireguard-go) per GB received in the TCP runs; undefined for the kernel. */
  daemonCpuSPerGB?: number;
  /** CPU seconds of the whole machine (all CPUs busy time) per GB received in the TCP runs. */
  machineCpuSPerGB: number;
  /** Largest VmHWM of the tunnel daemons, MB; undefined for the kernel. */
  daemonMaxRssMB?: number;
  daemonRssMB?: number[];
  tcpBytes: number;
  ratios?: Record<string, number>;
}

function series(runs: number[]): Series {
  return { runs, median: median(runs) };
}

// ---------------------------------------------------------------------------
// measurements

interface IperfJson {
  error?: string;
  end: {
    sum_received: { bytes: number; bits_per_second: number; seconds: number; packets?: number; lost_packets?: number };
    sum_sent: { bytes: number; seconds: number; packets?: number };
  };
}

/** One iperf3 test: a one-off server in `serverNs`, the client in `clientNs`, both bounded. */
async function iperf(lab: Lab, serverNs: string, clientNs: string, serverIp: string, args: string[]): Promise<IperfJson> {
  const server: LabProcess = lab.spawn(serverNs, ['iperf3', '-s', '-1', '--forceflush', '-B', serverIp, '-p', String(IPERF_PORT)]);
  try {
    await server.waitForLog(/Server listening/, 10_000);
    const r = await lab.exec(clientNs, ['iperf3', '-c', serverIp, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-J', '--connect-timeout', '5000', ...args], {
      timeoutMs: (SECONDS + 30) * 1000,
      allowFail: true,
    });
    let j: IperfJson;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(`iperf3 ${args.join(' ')}: exit ${r.code}, no JSON: ${(r.stdout + r.stderr).trim().slice(0, 500)}`);
    }
    if (j.error || r.code !== 0) throw new Error(`iperf3 ${args.join(' ')}: ${j.error ?? `exit ${r.code}`}`);
    return j;
  } finally {
    await Promise.race([server.exited, new Promise((res) => setTimeout(res, 5000))]);
    server.kill('SIGKILL');
  }
}

async function ping(lab: Lab, fromNs: string, toIp: string): Promise<RowResult['ping']> {
  const r = await lab.exec(fromNs, ['ping', '-n', '-q', '-c', String(PING_COUNT), '-i', String(PING_INTERVAL_S), '-W', '1', '-w', '20', toIp], {
    timeoutMs: 25_000,
    allowFail: true,
  });
  const counts = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(r.stdout);
  if (!counts || !rtt) throw new Error(`ping ${toIp}: exit ${r.code}: ${(r.stdout + r.stderr).trim()}`);
  return {
    sent: Number(counts[1]),
    received: Number(counts[2]),
    minMs: Number(rtt[1]),
    avgMs: Number(rtt[2]),
    maxMs: Number(rtt[3]),
    mdevMs: Number(rtt[4]),
  };
}

/** Runs every measurement between two pods; `daemonPids` (the tunnel's processes) are sampled for CPU and RSS (empty for the kernel). */
async function measure(lab: Lab, name: string, engine: string, clientNs: string, serverNs: string, daemonPids: number[]): Promise<RowResult> {
  const serverIp = lab.podIp(serverNs);
  if (!(await lab.ping(clientNs, serverIp, { count: 3, timeoutS: 5 }))) throw new Error(`${name}: pod ${lab.podIp(clientNs)} cannot ping ${serverIp}`);

  const progress = (what: string): void => warn(`[bench ${name}] ${what}`);
  progress('ping');
  const p = await ping(lab, clientNs, serverIp);

  let tcpBytes = 0;
  let daemonCpu = 0;
  let machineCpu = 0;
  const tcp = async (streams: number): Promise<number> => {
    const d0 = daemonPids.reduce((s, pid) => s + processCpuS(pid), 0);
    const m0 = machineBusyS();
    const j = await iperf(lab, serverNs, clientNs, serverIp, streams > 1 ? ['-P', String(streams)] : []);
    machineCpu += machineBusyS() - m0;
    daemonCpu += daemonPids.reduce((s, pid) => s + processCpuS(pid), 0) - d0;
    tcpBytes += j.end.sum_received.bytes;
    return j.end.sum_received.bits_per_second / 1e9;
  };
  const tcp1: number[] = [];
  const tcp4: number[] = [];
  for (let k = 0; k < REPEATS; k++) {
    progress(`TCP 1 stream, run ${k + 1}/${REPEATS}`);
    tcp1.push(await tcp(1));
  }
  for (let k = 0; k < REPEATS; k++) {
    progress(`TCP 4 streams, run ${k + 1}/${REPEATS}`);
    tcp4.push(await tcp(4));
  }
  const rx: number[] = [];
  const tx: number[] = [];
  for (let k = 0; k < REPEATS; k++) {
    progress(`UDP ${UDP_PAYLOAD} B, run ${k + 1}/${REPEATS}`);
    const j = await iperf(lab, serverNs, clientNs, serverIp, ['-u', '-b', '0', '-l', String(UDP_PAYLOAD)]);
    const rcv = j.end.sum_received;
    rx.push(((rcv.packets ?? 0) - (rcv.lost_packets ?? 0)) / rcv.seconds);
    tx.push((j.end.sum_sent.packets ?? 0) / j.end.sum_sent.seconds);
  }
  const gb = tcpBytes / 1e9;
  const rss = daemonPids.map(vmHwmMB);
  return {
    name,
    engine,
    tcp1Gbps: series(tcp1),
    tcp4Gbps: series(tcp4),
    udpRxPps: series(rx),
    udpTxPps: series(tx),
    ping: p,
    ...(daemonPids.length ? { daemonCpuSPerGB: daemonCpu / gb, daemonMaxRssMB: Math.max(...rss), daemonRssMB: rss } : {}),
    machineCpuSPerGB: machineCpu / gb,
    tcpBytes,
  };
}

// ---------------------------------------------------------------------------
// rows

/** The hand-built kernel row (`kernel`, every ratio's reference), or with its routes' outer UDP checksum on as weft's kernel engine sets it (`kernel csum`). */
async function kernelRow(outerChecksum = false): Promise<RowResult> {
  const name = outerChecksum ? 'kernel csum' : 'kernel';
  const c = await WeftCluster.create({ nodes: 2, podsPerNode: 0, name: outerChecksum ? 'bench-kcsum' : 'bench-kernel', startNodes: false });
  try {
    // Kernel to kernel: the receiving kernel accepts partial checksums, so
    // the offloads stay on, as on a real pair of kernel nodes.
    const k1 = await startKernelNode(c, 1, { subnet: planSubnet(1), pods: 1, txChecksumOff: 'none', outerChecksum });
    const k2 = await startKernelNode(c, 2, { subnet: planSubnet(2), pods: 1, txChecksumOff: 'none', outerChecksum });
    await k1.refreshRoutes();
    return await measure(c.lab, name, 'kernel', k1.pods[0]!, k2.pods[0]!, []);
  } finally {
    await c.destroy();
  }
}

/**
 * A weft row: "engine" or "engine:flag,flag" (extra weftd flags, e.g.
 * "native:--queues=1"), both nodes alike.
 */
async function weftRow(spec: string, encrypted = false): Promise<RowResult> {
  const [engine, extra = ''] = spec.split(':') as [string, string?];
  const flags = extra.split(',').filter((f) => f !== '');
  const initFlags = encrypted ? ['--encryption', 'wireguard'] : [];
  const c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: `bench-${engine}${encrypted ? '-wg' : ''}`, engine, flags, initFlags });
  try {
    const pids = [1, 2].map((i) => c.nodes.get(i)!.weftd!.pid);
    const name = `weft ${[engine, ...flags, ...(encrypted ? ['wireguard'] : [])].join(' ')}`;
    return await measure(c.lab, name, engine, c.nodes.get(1)!.pods[0]!, c.nodes.get(2)!.pods[0]!, pids);
  } finally {
    await c.destroy();
  }
}

/** A row of another tunnel (TUNNELS), on a lab of its own with the same layout. */
async function tunnelRow(name: string): Promise<RowResult> {
  const lab = await Lab.create({ nodes: 2, name: `bench-${name}` });
  try {
    const nodes = await TUNNELS[name]!.start(lab, 1);
    return await measure(lab, name, name, nodes[0]!.pods[0]!, nodes[1]!.pods[0]!, nodes.map((n) => n.process.pid));
  } finally {
    await lab.destroy();
  }
}

// ---------------------------------------------------------------------------
// report

const fmt = (v: number | undefined, digits: number): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

function addRatios(rows: RowResult[]): void {
  const k = rows.find(isKernelReference);
  if (!k) return;
  for (const r of rows) {
    r.ratios = {
      tcp1Gbps: r.tcp1Gbps.median / k.tcp1Gbps.median,
      tcp4Gbps: r.tcp4Gbps.median / k.tcp4Gbps.median,
      udpRxPps: r.udpRxPps.median / k.udpRxPps.median,
      pingAvgMs: r.ping.avgMs / k.ping.avgMs,
      machineCpuSPerGB: r.machineCpuSPerGB / k.machineCpuSPerGB,
    };
  }
}

function table(rows: RowResult[]): string[] {
  const cell = (v: number | undefined, digits: number, ratio: number | undefined, isKernel: boolean): string =>
    v === undefined ? '-' : isKernel || ratio === undefined ? fmt(v, digits) : `${fmt(v, digits)} (${fmt(ratio, ratio < 0.1 ? 3 : 2)}x)`;
  const lines = [
    '| row | TCP 1 stream Gbit/s | TCP 4 streams Gbit/s | UDP 64 B received kpps | ping avg ms | daemon CPU s/GB | machine CPU s/GB | daemon max RSS MB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const k = isKernelReference(r);
    lines.push(
      `| ${r.name} | ${cell(r.tcp1Gbps.median, 2, r.ratios?.tcp1Gbps, k)} | ${cell(r.tcp4Gbps.median, 2, r.ratios?.tcp4Gbps, k)} | ${cell(r.udpRxPps.median / 1e3, 1, r.ratios?.udpRxPps, k)} | ${cell(r.ping.avgMs, 3, r.ratios?.pingAvgMs, k)} | ${fmt(r.daemonCpuSPerGB, 2)} | ${cell(r.machineCpuSPerGB, 2, r.ratios?.machineCpuSPerGB, k)} | ${fmt(r.daemonMaxRssMB, 0)} |`,
    );
  }
  return lines;
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    warn('bench/e2e: needs root: it builds network namespaces, TUN and VXLAN devices (run it as root, e.g. sudo npx tsx bench/e2e.ts)');
    return 2;
  }
  if (!existsSync(WEFTD)) {
    warn(`bench/e2e: ${WEFTD} is missing: run \`npm run build:ts\` first`);
    return 2;
  }
  const date = new Date().toISOString();
  const skipped = new Map(OTHER_TUNNELS.map((t) => [t, missingCommand(TUNNELS[t]!.commands)]));
  const versions = Object.fromEntries(
    OTHER_TUNNELS.filter((t) => !skipped.get(t)).map((t) => {
      const [cmd, ...args] = TUNNELS[t]!.version;
      return [t, execFileSync(cmd, args, { encoding: 'utf8', timeout: 3000 }).split('\n')[0]!.trim()];
    }),
  );
  const weftSpecs = [...ENGINES, ...(TECHNIQUES ? TECHNIQUES_OFF : [])];
  const env = {
    date,
    nproc: cpus().length,
    kernel: release(),
    cpu: cpuModel(),
    node: process.version,
    iperf3: execFileSync('iperf3', ['--version'], { encoding: 'utf8', timeout: 3000 }).split('\n')[0]!.trim(),
    tunnels: versions,
    seconds: SECONDS,
    repeats: REPEATS,
    engines: weftSpecs,
    encrypted: ENCRYPTED,
  };
  say(`weft e2e benchmark: pod to pod across 2 nodes, ${SECONDS} s per iperf3 run, median of ${REPEATS}; ${env.nproc} CPUs (${env.cpu}), kernel ${env.kernel}`);

  const errors: string[] = [];
  const skips: string[] = [];
  const rows: RowResult[] = [];

  const plan: { name: string; run: () => Promise<RowResult> }[] = [{ name: 'kernel', run: () => kernelRow() }];
  if (KERNEL_CSUM) plan.push({ name: 'kernel csum', run: () => kernelRow(true) });
  for (const spec of weftSpecs) plan.push({ name: `weft ${spec}`, run: () => weftRow(spec) });
  for (const engine of ENCRYPTED) plan.push({ name: `weft ${engine} wireguard`, run: () => weftRow(engine, true) });
  for (const t of OTHER_TUNNELS) {
    const why = skipped.get(t);
    if (why) {
      skips.push(`${t}: ${why}`);
      warn(`[bench ${t}] skipped: ${why}`);
    } else {
      plan.push({ name: t, run: () => tunnelRow(t) });
    }
  }
  for (const row of plan) {
    const t0 = Date.now();
    try {
      rows.push(await row.run());
      warn(`[bench ${row.name}] done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    } catch (err) {
      errors.push(`${row.name}: ${(err as Error).message}`);
      warn(`[bench ${row.name}] ${(err as Error).message}`);
    }
  }
  addRatios(rows);

  say();
  for (const l of table(rows)) say(l);
  say();
  say('(x) = ratio to the kernel row of this run; for ping and CPU, higher is worse. CPU per GB counts the TCP runs (1 and 4 streams).');
  for (const s of skips) say(`skipped: ${s}`);
  for (const e of errors) say(`error: ${e}`);

  const file = writeResult('e2e', date, { ...env, method: 'bench/README.md', rows, skipped: skips, errors });
  const chart = file.replace(/\.json$/, '.svg');
  writeFileSync(chart, ratioChart(rows, chartTitle(date, env.cpu)));
  say(`\nwrote ${file} and ${chart}`);
  return errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    warn(`bench/e2e: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exit(1);
  },
);
