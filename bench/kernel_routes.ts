// How long the kernel engine takes to program the kernel (bench/README.md):
// a 1,000-peer table applied to an empty device, and one peer's change after
// it, each as weftd does it (the encap routes in one rtnetlink conversation
// through the addon, the filter's node set in one `nft` run), beside the
// same routes written with iproute2 (`ip -batch`, and one `ip route
// replace`): the process per change that the addon's rtnetlink saves.
//
//   npx tsx bench/kernel_routes.ts          (root; a few seconds)
//   WEFT_BENCH_KERNEL_PEERS=1000 WEFT_BENCH_KERNEL_REPEATS=5
//
// Everything runs in a network namespace of its own, deleted on every path.
// Prints a markdown table and writes bench/results/kernel-routes-<date>.json.

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { KERNEL_ROUTE_PROTOCOL } from '../src/constants.js';
import { EncapRoutes, type EncapTarget } from '../src/host/encap_routes.js';
import { KernelFilter } from '../src/host/kernel_filter.js';
import { VxlanDevice } from '../src/host/vxlan_device.js';
import { formatCidr, formatIp, parseCidr, parseIp, subnetAt } from '../src/net/ipv4.js';
import { median } from '../test/harness/stats.js';
import { intEnv } from './env.js';
import { cpuModel } from './proc.js';
import { writeResult } from './results.js';

const PEERS = intEnv('WEFT_BENCH_KERNEL_PEERS', 1000, 1);
const REPEATS = intEnv('WEFT_BENCH_KERNEL_REPEATS', 5, 1);
const DEV = 'weftb0';
const NETWORK = parseCidr('198.19.0.0/16');
/** /26s: 1,024 of them in the lab's /16. */
const SUBNET_LEN = 26;

interface Row {
  what: string;
  runsMs: number[];
  medianMs: number;
}

// ---- inside the namespace

const remoteOf = (i: number, moved = false): number => parseIp(`198.18.${moved ? 200 : 1 + Math.floor(i / 250)}.${1 + (i % 250)}`);

function table(peers: number, movedPeer = -1): Map<number, EncapTarget> {
  return new Map(Array.from({ length: peers }, (_, i) => [subnetAt(NETWORK, SUBNET_LEN, i).base, { remote: remoteOf(i, i === movedPeer), vni: 1 }]));
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function inside(): Promise<Row[]> {
  const peers = Math.min(PEERS, 2 ** (SUBNET_LEN - NETWORK.len) - 1);
  const self = subnetAt(NETWORK, SUBNET_LEN, peers);
  const spec = { network: NETWORK, subnet: self, mtu: 1464, port: 4790, vni: 1, underlayMtu: 1500 };
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const device = new VxlanDevice(DEV, KERNEL_ROUTE_PROTOCOL);
  const filter = await KernelFilter.install({ device: DEV, port: 4790, vni: 1, network: NETWORK, subnet: self }, []);
  const full = table(peers);
  const changed = table(peers, 7);
  const ips = [...full.values()].map((t) => t.remote);
  const movedIps = [...changed.values()].map((t) => t.remote);
  const runs: Record<string, number[]> = {};
  const time = async (what: string, fn: () => unknown): Promise<void> => {
    const t0 = process.hrtime.bigint();
    await fn();
    (runs[what] ??= []).push(ms(t0));
  };
  for (let r = 0; r < REPEATS; r++) {
    // A fresh device each time: no routes, as at a first start.
    device.remove();
    const { link } = device.configure(spec);
    const routes = new EncapRoutes({ protocol: KERNEL_ROUTE_PROTOCOL, subnetLen: SUBNET_LEN, network: NETWORK });
    await filter.setNodes([]);
    await time(`${peers} peers: encap routes (rtnetlink, one conversation)`, () => routes.apply(full, link.index, true));
    await time(`${peers} peers: node set (one nft run, the whole set)`, () => filter.setNodes(ips));
    await time('one peer changed: its encap route (rtnetlink)', () => routes.apply(changed, link.index, true));
    await time('one peer changed: node set (one nft run, its difference)', () => filter.setNodes(movedIps));
    if (routes.routes.size !== peers) throw new Error(`${routes.routes.size} routes installed, not ${peers}`);

    // The same routes through iproute2, on an empty device again.
    device.remove();
    device.configure(spec);
    const lines = [...full].map(([base, t]) => `route replace ${formatCidr({ base, len: SUBNET_LEN })} encap ip id 1 dst ${formatIp(t.remote)} csum dev ${DEV} proto ${KERNEL_ROUTE_PROTOCOL}`);
    await time(`${peers} peers: encap routes with ip -batch (for comparison)`, () => execFileSync('ip', ['-batch', '-'], { input: `${lines.join('\n')}\n` }));
    const one = changed.get(subnetAt(NETWORK, SUBNET_LEN, 7).base)!;
    await time('one peer changed: ip route replace (for comparison)', () =>
      execFileSync('ip', ['route', 'replace', formatCidr(subnetAt(NETWORK, SUBNET_LEN, 7)), 'encap', 'ip', 'id', '1', 'dst', formatIp(one.remote), 'csum', 'dev', DEV, 'proto', String(KERNEL_ROUTE_PROTOCOL)]),
    );
  }
  await filter.remove();
  device.remove();
  return Object.entries(runs).map(([what, runsMs]) => ({ what, runsMs, medianMs: median(runsMs) }));
}

// ---- outside: the namespace, the report

function main(): number {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/kernel_routes: needs root: it creates a network namespace and a VXLAN device (run it as root)\n');
    return 2;
  }
  const ns = `wkb-${process.pid}-${randomBytes(2).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  let out;
  try {
    out = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), '--inside'], { encoding: 'utf8', timeout: 120_000 });
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
  if (out.status !== 0) {
    process.stderr.write(`bench/kernel_routes: ${out.stderr || out.stdout || `exit ${out.status}`}\n`);
    return 1;
  }
  const rows = JSON.parse(out.stdout) as Row[];
  const date = new Date().toISOString();
  const kernel = release();
  process.stdout.write(`weft kernel engine: programming the kernel, median of ${REPEATS}; ${cpuModel()}, kernel ${kernel}\n\n| what | median ms | runs ms |\n| --- | ---: | --- |\n`);
  for (const r of rows) process.stdout.write(`| ${r.what} | ${r.medianMs.toFixed(2)} | ${r.runsMs.map((v) => v.toFixed(1)).join(', ')} |\n`);
  const file = writeResult('kernel-routes', date, { date, kernel, cpu: cpuModel(), peers: PEERS, repeats: REPEATS, method: 'bench/README.md', rows });
  process.stdout.write(`\nwrote ${file}\n`);
  return 0;
}

if (process.argv.includes('--inside')) {
  inside().then(
    (rows) => {
      process.stdout.write(JSON.stringify(rows));
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
} else {
  process.exit(main());
}
