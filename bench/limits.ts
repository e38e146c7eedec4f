// What bounds the targets weft does not meet on a small VM, measured
// (bench/PROFILE.md, "Limits"):
//
//   udp    iperf3 UDP with 64-byte payloads between two pods on two native
//          nodes, unpaced (as bench/e2e.ts runs it) and paced: where every
//          packet went (the sending node's weft0 TX drops, what each weftd
//          forwarded, the receiving pod's UDP receive-buffer drops), both
//          weftd's CPU and the machine's busy CPU.
//   ping   ping RTT through the kernel's VXLAN-GPE and through weft, with
//          the CPUs left to idle and with a SCHED_IDLE spinner on each CPU
//          (it runs only when nothing else wants the CPU, so a CPU never
//          halts and a wake-up never waits for the hypervisor to resume it).
//   wake   `perf bench sched pipe`: a round trip of two thread wake-ups
//          across CPUs, and on one CPU.
//
//   npm run bench:limits      (root; iperf3, linux-perf; about 2 minutes)
//   WEFT_LIMITS_SECONDS=5 WEFT_LIMITS_RATES_KPPS=150,200,250
//
// Prints markdown. Every load is bounded in time (iperf3 -t, ping -c, the
// spinners under `timeout`); every lab is destroyed and every spinner
// stopped by PID on every path.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { WeftCluster } from '../test/lab/cluster.js';
import { startKernelNode } from '../test/lab/kernel_node.js';
import { planSubnet } from '../test/lab/overlay_node.js';
import { intEnv } from './env.js';
import { machineBusyS, processCpuS } from './proc.js';

const SECONDS = intEnv('WEFT_LIMITS_SECONDS', 5, 1);
const RATES_KPPS = (process.env.WEFT_LIMITS_RATES_KPPS ?? '150,200,250').split(',').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`WEFT_LIMITS_RATES_KPPS: "${s}" is not a positive integer`);
  return n;
});
const PAYLOAD = 64;
const PORT = 5299;
const say = (s = ''): void => void process.stdout.write(`${s}\n`);

/** A lab's handles do not keep Node alive; this does while the bench runs. */
const keepAlive = setInterval(() => undefined, 1000);

async function linkStats(c: WeftCluster, ns: string, dev: string): Promise<{ txDropped: number }> {
  const r = await c.lab.exec(ns, ['ip', '-s', '-j', 'link', 'show', dev]);
  const [link] = JSON.parse(r.stdout) as { stats64: { tx: { dropped: number } } }[];
  return { txDropped: link!.stats64.tx.dropped };
}

async function udpRcvbufErrors(c: WeftCluster, ns: string): Promise<number> {
  const lines = (await c.lab.exec(ns, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const keys = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[keys.indexOf('RcvbufErrors')]);
}

interface UdpRow {
  readonly rate: string;
  readonly sentKpps: number;
  readonly receivedKpps: number;
  readonly senderTunDroppedKpps: number;
  readonly forwardedKpps: number;
  readonly podRcvbufDroppedKpps: number;
  readonly weftdCpuS: readonly number[];
  readonly machineBusyShare: number;
}

async function udp(): Promise<UdpRow[]> {
  const c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'limits-udp' });
  try {
    const [a, b] = c.pods();
    const pids = [1, 2].map((i) => c.nodes.get(i)!.weftd!.pid);
    const rows: UdpRow[] = [];
    for (const kpps of [0, ...RATES_KPPS]) {
      const server = c.lab.spawn(b!.ns, ['iperf3', '-s', '-1', '--forceflush', '-B', b!.ip, '-p', String(PORT)]);
      try {
        await server.waitForLog(/Server listening/, 10_000);
        const before = { tun: await linkStats(c, c.lab.nodeNs(1), 'weft0'), pod: await udpRcvbufErrors(c, b!.ns), inside: (await c.counters(1)).inside_packets!, cpu: pids.map(processCpuS), busy: machineBusyS() };
        const bps = kpps === 0 ? '0' : String(kpps * 1000 * PAYLOAD * 8);
        const r = await c.lab.exec(a!.ns, ['iperf3', '-c', b!.ip, '-p', String(PORT), '-t', String(SECONDS), '-J', '-u', '-b', bps, '-l', String(PAYLOAD)], { timeoutMs: (SECONDS + 30) * 1000 });
        const busy = machineBusyS() - before.busy;
        const cpu = pids.map((p, i) => processCpuS(p) - before.cpu[i]!);
        const j = JSON.parse(r.stdout) as { end: { sum_sent: { packets: number; seconds: number }; sum_received: { packets: number; lost_packets: number; seconds: number } } };
        const rcv = j.end.sum_received;
        const per = (n: number): number => Math.round(n / SECONDS / 100) / 10;
        rows.push({
          rate: kpps === 0 ? 'unpaced (-b 0)' : `${kpps} kpps`,
          sentKpps: Math.round(j.end.sum_sent.packets / j.end.sum_sent.seconds / 100) / 10,
          receivedKpps: Math.round((rcv.packets - rcv.lost_packets) / rcv.seconds / 100) / 10,
          senderTunDroppedKpps: per((await linkStats(c, c.lab.nodeNs(1), 'weft0')).txDropped - before.tun.txDropped),
          forwardedKpps: per((await c.counters(1)).inside_packets! - before.inside),
          podRcvbufDroppedKpps: per((await udpRcvbufErrors(c, b!.ns)) - before.pod),
          weftdCpuS: cpu.map((x) => Math.round(x * 100) / 100),
          machineBusyShare: Math.round((busy / (SECONDS * cpus().length)) * 100) / 100,
        });
      } finally {
        server.kill('SIGKILL');
      }
    }
    return rows;
  } finally {
    await c.destroy();
  }
}

async function pingAvgMs(c: WeftCluster, fromNs: string, toIp: string): Promise<number> {
  const r = await c.lab.exec(fromNs, ['ping', '-n', '-q', '-c', '200', '-i', '0.02', '-W', '1', '-w', '20', toIp], { timeoutMs: 25_000, allowFail: true });
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (!m) throw new Error(`ping ${toIp}: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

/** `f` with a SCHED_IDLE busy loop pinned to every CPU, each under `timeout` and stopped by PID afterwards. */
async function withCpusAwake<T>(f: () => Promise<T>): Promise<T> {
  const spinners: ChildProcess[] = cpus().map((_, cpu) =>
    spawn('timeout', ['60', 'taskset', '-c', String(cpu), 'chrt', '-i', '0', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }),
  );
  try {
    return await f();
  } finally {
    for (const s of spinners) if (s.pid !== undefined && s.exitCode === null) s.kill('SIGTERM');
  }
}

interface PingRow {
  readonly path: string;
  readonly idleMs: number;
  readonly awakeMs: number;
}

async function ping(kind: 'kernel' | 'weft'): Promise<PingRow> {
  const c = await WeftCluster.create({ nodes: 2, podsPerNode: kind === 'weft' ? 1 : 0, name: `limits-ping-${kind}`, startNodes: kind === 'weft' });
  try {
    let from: string;
    let to: string;
    if (kind === 'kernel') {
      const k1 = await startKernelNode(c, 1, { subnet: planSubnet(1), pods: 1, txChecksumOff: 'none' });
      const k2 = await startKernelNode(c, 2, { subnet: planSubnet(2), pods: 1, txChecksumOff: 'none' });
      await k1.refreshRoutes();
      from = k1.pods[0]!;
      to = c.lab.podIp(k2.pods[0]!);
    } else {
      const [a, b] = c.pods();
      from = a!.ns;
      to = b!.ip;
    }
    if (!(await c.lab.ping(from, to, { count: 3 }))) throw new Error(`${kind}: no ping from ${from} to ${to}`);
    const idleMs = await pingAvgMs(c, from, to);
    const awakeMs = await withCpusAwake(() => pingAvgMs(c, from, to));
    return { path: kind === 'kernel' ? 'kernel VXLAN-GPE' : 'weft native', idleMs, awakeMs };
  } finally {
    await c.destroy();
  }
}

function wakeUs(pinned: boolean): number {
  const args = ['bench', 'sched', 'pipe', '-l', '20000'];
  const out = execFileSync(pinned ? 'taskset' : 'perf', pinned ? ['-c', '0', 'perf', ...args] : args, { encoding: 'utf8', timeout: 30_000 });
  const m = /([\d.]+) usecs\/op/.exec(out);
  if (!m) throw new Error(`perf bench sched pipe: ${out}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/limits.ts needs root (network namespaces, TUN)');
  say(`weft limits: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${new Date().toISOString()}\n`);

  const rows = await udp();
  say(`## UDP ${PAYLOAD} B, pod to pod across two native nodes, ${SECONDS} s per rate\n`);
  say('| sender rate | sent kpps | received kpps | dropped at the sender\'s weft0 kpps | forwarded by weftd kpps | dropped at the receiving pod\'s socket kpps | weftd CPU s (node 1, node 2) | machine busy |');
  say('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    say(`| ${r.rate} | ${r.sentKpps} | ${r.receivedKpps} | ${r.senderTunDroppedKpps} | ${r.forwardedKpps} | ${r.podRcvbufDroppedKpps} | ${r.weftdCpuS.join(', ')} | ${Math.round(r.machineBusyShare * 100)}% |`);
  }

  const pings = [await ping('kernel'), await ping('weft')];
  say('\n## ping, 200 x 20 ms, average RTT\n');
  say('| path | CPUs left to idle | CPUs kept awake (SCHED_IDLE spinners) |');
  say('| --- | ---: | ---: |');
  for (const p of pings) say(`| ${p.path} | ${p.idleMs.toFixed(3)} ms | ${p.awakeMs.toFixed(3)} ms |`);
  say(`\nweft minus kernel: ${(pings[1]!.idleMs - pings[0]!.idleMs).toFixed(3)} ms idle, ${(pings[1]!.awakeMs - pings[0]!.awakeMs).toFixed(3)} ms awake`);

  say('\n## thread wake-ups (`perf bench sched pipe`, 20,000 round trips of two wake-ups)\n');
  say(`across CPUs: ${wakeUs(false).toFixed(1)} us per round trip; on one CPU: ${wakeUs(true).toFixed(1)} us`);
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench/limits: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => clearInterval(keepAlive));
