// Where weft's CPU goes: a system-wide `perf` profile (software clock,
// call graphs) during a bulk TCP transfer between two pods on two native
// nodes, and context switches and CPU migrations counted per GB moved and
// per ping round trip. Prints the top symbols by process and the counts;
// bench/PROFILE.md records a run. Root and Debian's linux-perf; ~1 min.
// WEFT_PROFILE_ENCRYPTION=wireguard profiles an encrypted cluster instead.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftCluster } from '../test/lab/cluster.js';
import type { LabProcess } from '../test/lab/lab.js';

const SECONDS = Number(process.env.WEFT_PROFILE_SECONDS ?? 5);
const ENCRYPTION = process.env.WEFT_PROFILE_ENCRYPTION ?? 'off';
const say = (s = ''): void => void process.stdout.write(`${s}\n`);

/** A lab process's end. Its handle does not keep Node alive, so a timer does meanwhile (and bounds the wait). */
async function ended(p: LabProcess, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within 60 s`)), 60_000);
  });
  try {
    await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** perf stat's counts: { 'context-switches': n, 'cpu-migrations': n }. */
function parseStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+)\s+(context-switches|cpu-migrations)/.exec(line);
    if (m) out[m[2]!] = Number(m[1]!.replace(/,/g, ''));
  }
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/profile.ts needs root (namespaces, perf -a)');
  const dir = mkdtempSync(join(tmpdir(), 'weft-profile-'));
  const c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'profile', initFlags: ['--encryption', ENCRYPTION] });
  try {
    const [a, b] = c.pods();
    const srv = c.lab.spawn(b!.ns, ['iperf3', '-s', '--forceflush', '-B', b!.ip]);
    await srv.waitForLog(/Server listening/, 5000);
    const iperf = async (): Promise<number> => {
      const r = await c.lab.exec(a!.ns, ['iperf3', '-c', b!.ip, '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 20) * 1000 });
      return (JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes;
    };

    // 1. The profile of a bulk transfer.
    const data = join(dir, 'tcp.data');
    const record = c.lab.spawn(c.lab.nodeNs(1), ['setsid', '--wait', 'perf', 'record', '-a', '-g', '-F', '499', '-o', data, '--', 'sleep', String(SECONDS + 1)]);
    const bytes = await iperf();
    await ended(record, 'perf record');
    const report = execFileSync('perf', ['report', '-i', data, '--stdio', '--no-children', '--sort', 'comm,sym', '--percent-limit', '1.5', '-g', 'none'], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
    const byComm = execFileSync('perf', ['report', '-i', data, '--stdio', '--no-children', '--sort', 'comm', '-g', 'none'], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
    say(`TCP, ${SECONDS} s, ${a!.ip} -> ${b!.ip}, encryption ${ENCRYPTION}: ${((bytes * 8) / SECONDS / 1e9).toFixed(2)} Gbit/s`);
    say('\nsamples by process:');
    say(byComm.split('\n').filter((l) => /^\s+\d/.test(l)).slice(0, 12).join('\n'));
    say('\ntop symbols (process, symbol), at least 1.5% of all samples:');
    say(report.split('\n').filter((l) => /^\s+\d/.test(l)).slice(0, 40).join('\n'));

    // 2. Context switches and migrations per GB.
    const stat = c.lab.spawn(c.lab.nodeNs(1), ['setsid', '--wait', 'perf', 'stat', '-a', '-e', 'context-switches,cpu-migrations', '--', 'sleep', String(SECONDS + 1)]);
    const bytes2 = await iperf();
    await ended(stat, 'perf stat');
    const s = parseStat(stat.log());
    say(`\nbulk TCP: ${((s['context-switches'] ?? 0) / (bytes2 / 1e9)).toFixed(0)} context switches and ${((s['cpu-migrations'] ?? 0) / (bytes2 / 1e9)).toFixed(0)} migrations per GB, whole machine`);

    // 3. The same per ping round trip.
    const pings = 500;
    const stat2 = c.lab.spawn(c.lab.nodeNs(1), ['setsid', '--wait', 'perf', 'stat', '-a', '-e', 'context-switches,cpu-migrations', '--', 'sleep', '3']);
    await c.lab.exec(a!.ns, ['ping', '-n', '-q', '-c', String(pings), '-i', '0.005', b!.ip], { timeoutMs: 30_000 });
    await ended(stat2, 'perf stat');
    const p = parseStat(stat2.log());
    say(`ping: ${((p['context-switches'] ?? 0) / pings).toFixed(1)} context switches per round trip over 3 s (idle switches included), ${pings} pings at 5 ms`);
    srv.kill();
  } finally {
    await c.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/profile: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
