// `weftctl check` on the lab: two weftd nodes (--ip-masq, so every check
// has something to look at) with a pod each, on a three-member etcd. A
// healthy node passes; then each check's subject is broken on purpose,
// `weftctl check` on the node must name that check (and say what to do),
// and the break is undone before the next.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encapFilterNftScript } from '../../src/host/encap_filter.js';
import { nftInstallScript } from '../../src/host/masquerade.js';
import { formatIp, parseCidr } from '../../src/net/ipv4.js';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { POD_NETWORK, WEFTCTL, WeftCluster } from '../lab/cluster.js';

interface Report {
  status: 'ok' | 'warn' | 'fail';
  checks: { name: string; verdict: string; summary: string; fix?: string }[];
}

/** Renewed every 4 s; under half of it left (6 s) means renewals fail. */
const LEASE_TTL_S = 12;

describe.skipIf(rootSkipReason())('weftctl check on 2 nodes (needs root: network namespaces, TUN, weftd, nftables)', () => {
  let c: WeftCluster;
  const ns = (i: number): string => c.lab.nodeNs(i);
  const sh = (i: number, argv: string[]): Promise<unknown> => c.lab.exec(ns(i), argv);
  const subnet = (i: number): string => c.nodes.get(i)!.subnet!;
  const gateway = (i: number): string => `${formatIp(parseCidr(subnet(i)).base + 1)}/24`;

  /** `weftctl check --json` on node i: its exit status and report. */
  async function check(i: number, args: string[] = []): Promise<{ code: number; report: Report }> {
    const r = await c.lab.exec(ns(i), [process.execPath, WEFTCTL, 'check', '--json', ...args], { allowFail: true, timeoutMs: 20_000 });
    return { code: r.code, report: JSON.parse(r.stdout) as Report };
  }

  /** The verdict of every check that is not ok, by name. */
  function notOk(report: Report): Record<string, string> {
    return Object.fromEntries(report.checks.filter((k) => k.verdict !== 'ok').map((k) => [k.name, k.verdict]));
  }

  function named(report: Report, name: string): Report['checks'][number] {
    const k = report.checks.find((x) => x.name === name);
    if (!k) throw new Error(`no check ${name} in ${JSON.stringify(report)}`);
    return k;
  }

  /** Breaks something, asserts that check names it (and says what to do), then undoes it and asserts node i is healthy again. */
  async function breaks(i: number, name: string, verdict: 'warn' | 'fail', summary: RegExp, brk: () => Promise<unknown>, undo: () => Promise<unknown>, also: Record<string, string> = {}): Promise<void> {
    await brk();
    try {
      const { code, report } = await check(i);
      expect(notOk(report), JSON.stringify(report, null, 2)).toEqual({ [name]: verdict, ...also });
      expect(code).toBe(verdict === 'fail' ? 2 : 1);
      expect(named(report, name).summary).toMatch(summary);
      expect(named(report, name).fix).toMatch(/\S/);
    } finally {
      await undo();
    }
    expect(notOk((await check(i)).report)).toEqual({});
  }

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'check', etcdMembers: 3, flags: ['--ip-masq', '--lease-ttl', String(LEASE_TTL_S)] });
  }, 120_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('passes a healthy node: every check ok, exit 0, one line per check', async () => {
    const { code, report } = await check(1);
    expect(report.status).toBe('ok');
    expect(code).toBe(0);
    expect(report.checks.map((k) => `${k.name} ${k.verdict}`)).toEqual(['weftd', 'lease', 'subnet-file', 'tun', 'mtu', 'bridge', 'ip-forward', 'encap-filter', 'masquerade', 'peers', 'etcd'].map((n) => `${n} ok`));
    expect(named(report, 'bridge').summary).toBe(`cni0 ${gateway(1)}, MTU 1464, 1 pod interface`);
    expect(named(report, 'peers').summary).toBe('1 of 1 peers answer on the overlay');
    expect(named(report, 'etcd').summary).toMatch(/^3 of 3 members answer, leader http:\/\/198\.18\.0\.25[123]:2379; config 198\.19\.0\.0\/16, \/24 subnets, port 4790$/);

    const text = await c.lab.exec(ns(1), [process.execPath, WEFTCTL, 'check']);
    expect(text.stdout.split('\n').filter((l) => /^ok {4}\S/.test(l))).toHaveLength(11);
    expect(text.stdout).toMatch(/^ok: 11 ok\n$/m);
  });

  it('names a TUN whose MTU was changed behind weftd', () =>
    breaks(1, 'tun', 'fail', /^weft0 has MTU 1400, not the 1464 weftd set$/, () => sh(1, ['ip', 'link', 'set', 'weft0', 'mtu', '1400']), () => sh(1, ['ip', 'link', 'set', 'weft0', 'mtu', '1464'])));

  it('names a TUN that lost its address, and the peers it no longer reaches', () => {
    const addr = `${subnet(1).split('/')[0]}/16`;
    return breaks(1, 'tun', 'fail', new RegExp(`^weft0 lacks its address ${addr.replace(/\./g, '\\.')}$`), () => sh(1, ['ip', 'addr', 'del', addr, 'dev', 'weft0']), () => sh(1, ['ip', 'addr', 'add', addr, 'dev', 'weft0']), { peers: 'fail' });
  });

  it('names an underlay whose MTU no longer fits the TUN\'s (large transfers stall, ping works)', () =>
    breaks(1, 'mtu', 'fail', /^weft0's MTU 1464 plus 36 bytes of encapsulation exceeds eth0's MTU 1400: packets over 1364 bytes are lost/, () => sh(1, ['ip', 'link', 'set', 'eth0', 'mtu', '1400']), () => sh(1, ['ip', 'link', 'set', 'eth0', 'mtu', '1500'])));

  it('names cni0 with an address other than the subnet\'s gateway', () =>
    breaks(
      1,
      'bridge',
      'fail',
      new RegExp(`^cni0 has 198\\.19\\.250\\.1/24, not the gateway ${gateway(1).replace(/\./g, '\\.')} of `),
      async () => {
        await sh(1, ['ip', 'addr', 'del', gateway(1), 'dev', 'cni0']);
        await sh(1, ['ip', 'addr', 'add', '198.19.250.1/24', 'dev', 'cni0']);
      },
      async () => {
        await sh(1, ['ip', 'addr', 'del', '198.19.250.1/24', 'dev', 'cni0']);
        await sh(1, ['ip', 'addr', 'add', gateway(1), 'dev', 'cni0']);
      },
    ));

  it('names a pod interface with an MTU above the subnet file\'s', () =>
    breaks(1, 'bridge', 'fail', /^MTU above the subnet file's 1464: vp1 1500/, () => sh(1, ['ip', 'link', 'set', 'vp1', 'mtu', '1500']), () => sh(1, ['ip', 'link', 'set', 'vp1', 'mtu', '1464'])));

  it('names a kernel that does not forward IPv4', () =>
    breaks(1, 'ip-forward', 'fail', /^net\.ipv4\.ip_forward is 0/, () => sh(1, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']), () => sh(1, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])));

  it('names a subnet file that does not match the lease, and one that is gone; weftd writes it again at its next renewal', async () => {
    const file = join(c.nodeDir(1), 'subnet.env');
    const read = (): string => (existsSync(file) ? readFileSync(file, 'utf8') : '');
    // weftd rewrites the file at each renewal (every 4 s: the lease's new expiry), which undoes a break:
    // break it right after one, so the check runs well before the next.
    const afterRenewal = async (brk: () => unknown): Promise<void> => {
      const before = read();
      await until('weftd rewrites the subnet file at a renewal', () => read() !== before, 10_000, 20);
      brk();
    };
    const rewritten = (): Promise<unknown> => until('weftd writes the subnet file again', () => /^FLANNEL_SUBNET=/m.test(read()) && !read().includes('198.19.250.1'), 10_000, 50);
    const other = (): string => read().replace(/^FLANNEL_SUBNET=.*$/m, 'FLANNEL_SUBNET=198.19.250.1/24');
    await breaks(1, 'subnet-file', 'fail', /does not match the lease: subnet 198\.19\.250\.0\/24, the lease /, () => afterRenewal(() => writeFileSync(file, other())), rewritten, { bridge: 'fail' });
    await breaks(1, 'subnet-file', 'fail', /does not exist, though weftd holds /, () => afterRenewal(() => rmSync(file)), rewritten);
  });

  it('names an encapsulation filter with rules missing', () =>
    breaks(
      1,
      'encap-filter',
      'fail',
      /^table ip weft_encap lacks chain forward: ip saddr 198\.19\.0\.0\/16 udp dport 4790 counter drop/,
      () => sh(1, ['nft', 'flush', 'chain', 'ip', 'weft_encap', 'forward']),
      () => c.lab.exec(ns(1), ['sh', '-c', `printf '%s' '${encapFilterNftScript(parseCidr(POD_NETWORK), 4790)}' | nft -f -`]),
    ));

  it('names masquerade rules that are gone', () =>
    breaks(
      1,
      'masquerade',
      'fail',
      /^table ip weft is missing/,
      () => sh(1, ['nft', 'delete', 'table', 'ip', 'weft']),
      () => c.lab.exec(ns(1), ['sh', '-c', `printf '%s' '${nftInstallScript(parseCidr(POD_NETWORK), parseCidr(subnet(1)))}' | nft -f -`]),
    ));

  it('names a peer that does not answer on the overlay', () => {
    const weftd2 = c.nodes.get(2)!.weftd!;
    return breaks(1, 'peers', 'fail', new RegExp(`^1 of 1 peers do not answer on the overlay: node2 \\(${subnet(2).split('/')[0]!.replace(/\./g, '\\.')} via 198\\.18\\.0\\.2:4790\\)`), async () => weftd2.kill('SIGSTOP'), async () => weftd2.kill('SIGCONT'));
  });

  it('names etcd without a leader, and the lease that then runs down', async () => {
    const status = async (): Promise<{ leaseExpiresInS: number }> => JSON.parse((await c.http(1, '/status')).body) as { leaseExpiresInS: number };
    await c.lab.etcd.stop(2);
    await c.lab.etcd.stop(3);
    try {
      await until('node 1 lease under half its TTL', async () => (await status()).leaseExpiresInS < LEASE_TTL_S / 2, 15_000, 200);
      const { code, report } = await check(1);
      expect(named(report, 'etcd')).toMatchObject({ verdict: 'fail', summary: 'no leader: 1 of 3 members answer, none has a leader (the cluster lost its quorum)' });
      expect(named(report, 'lease').verdict).toMatch(/^(warn|fail)$/);
      expect(named(report, 'lease').summary).toMatch(/renewals (are failing|fail)/);
      expect(code).toBe(2);
    } finally {
      await Promise.all([c.lab.etcd.start(2), c.lab.etcd.start(3)]);
      await c.lab.etcd.waitLeader();
    }
    // The lease is renewed first; the watch re-lists and the etcd probe see etcd back on their own schedules, each within the wait.
    let left: Record<string, string> = {};
    await until(() => `node 1 passing every check again (not yet: ${JSON.stringify(left)})`, async () => {
      left = notOk((await check(1)).report);
      return Object.keys(left).length === 0;
    }, 20_000, 500);
  }, 60_000);

  it('names a weftd that waits for a free subnet, and passes its subnet file, which says there is none', async () => {
    // A cluster of its own under another prefix: a /23 of /24s holds one node (the first subnet is never handed out), and a hand-written lease holds it.
    const prefix = '/weft-full';
    await c.weftctl(['--etcd-prefix', prefix, 'init', '--network', '198.19.252.0/23', '--subnet-len', '24']);
    await c.lab.etcdctl(['put', `${prefix}/network/subnets/198.19.253.0-24`, JSON.stringify({ nodeName: 'other', publicIp: '198.18.0.77', port: 4790, vni: 1, version: 'hand' })]);
    await c.launchNode(3, ['--etcd-prefix', prefix]);
    try {
      await until('node3 waiting', async () => {
        const r = await c.http(3, '/status').catch(() => undefined);
        return r?.code === 200 && (JSON.parse(r.body) as { state: string }).state === 'waiting';
      }, 20_000, 200);
      const { code, report } = await check(3);
      expect(code).toBe(2);
      expect(notOk(report)).toEqual({ weftd: 'fail', lease: 'fail', tun: 'skip', mtu: 'skip', bridge: 'skip', 'encap-filter': 'skip', masquerade: 'skip', peers: 'skip' });
      const waiting = 'waiting for a free /24 in 198.19.252.0/23 (all 1 leased; the first subnet is never handed out)';
      expect(named(report, 'lease')).toMatchObject({ summary: `no lease held: ${waiting}`, fix: expect.stringContaining('widen the network') });
      expect(named(report, 'subnet-file').summary).toMatch(/says this node holds no subnet \(waiting for a free \/24 in 198\.19\.252\.0\/23/);
      expect(named(report, 'etcd').summary).toMatch(/config 198\.19\.252\.0\/23, \/24 subnets/);
    } finally {
      await c.stopNode(3);
    }
  });

  it('names cni0 left on the old subnet when the node took another (its subnet went to another node)', async () => {
    const old = subnet(2);
    const key = `/weft/network/subnets/${old.replace('/', '-')}`;
    await c.lab.etcdctl(['put', key, JSON.stringify({ nodeName: 'intruder', publicIp: '198.18.0.99', port: 4790, vni: 1, version: 'hand' })]);
    const now = await until('node2 on another subnet', async () => {
      const s = JSON.parse((await c.http(2, '/status')).body) as { state: string; subnet: string | null };
      return s.state === 'running' && s.subnet !== null && s.subnet !== old ? s.subnet : undefined;
    }, 20_000, 200);
    await c.lab.etcdctl(['del', key]);
    c.nodes.get(2)!.subnet = now;
    const { code, report } = await check(2);
    expect(notOk(report)).toEqual({ bridge: 'fail' });
    expect(code).toBe(2);
    const oldGateway = `${formatIp(parseCidr(old).base + 1)}/24`;
    expect(named(report, 'bridge')).toMatchObject({
      summary: `cni0 has ${oldGateway}, not the gateway ${gateway(2)} of ${now} (1 pod interface on it)`,
      fix: expect.stringContaining(`the next pod's ADD then moves cni0 to ${gateway(2)}`),
    });
  });

  it('names a weftd that is not running', async () => {
    await c.stopNode(2);
    // Without weftd to say where, the subnet file and etcd come from flags.
    const { code, report } = await check(2, ['--subnet-file', join(c.nodeDir(2), 'subnet.env'), '--etcd-endpoints', c.lab.etcdEndpoint]);
    expect(code).toBe(2);
    expect(named(report, 'weftd')).toMatchObject({ verdict: 'fail', summary: "weftd is not running or not listening on 127.0.0.1:9474 (ECONNREFUSED); see weftd's --metrics-addr" });
    expect(named(report, 'subnet-file')).toMatchObject({ verdict: 'warn', summary: expect.stringContaining(`names ${subnet(2)}, but weftd does not answer`) });
    expect(named(report, 'etcd').verdict).toBe('ok');
  });
});
