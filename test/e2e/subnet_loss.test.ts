// A node without a subnet, on the lab with real weftd, etcd and the CNI
// plugin (a /22 network of /24s: three nodes fill it; --lease-ttl 5): a
// --state-dir on a full filesystem, a node waiting on a full network, a
// frozen node whose subnet another node takes meanwhile (no ADD on it ever
// hands out an address of that subnet once the other holds it; CHECK fails
// its pods; it waits, then takes the subnet a leaving node releases, and new
// pods get addresses from it), and a lease outside the network counted and
// shown.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniCode } from '../../src/cni/spec.js';
import { parseSubnetFile } from '../../src/host/subnet_env.js';
import { contains, parseCidr, parseIp } from '../../src/net/ipv4.js';
import { callPlugin, pluginConf, type PluginAnswer, type PluginCall } from '../harness/cni_plugin.js';
import { rootSkipReason } from '../harness/privilege.js';
import { sleep, until } from '../harness/until.js';
import { type LogEvent, PREFIX, WeftCluster, weftdEvents } from '../lab/cluster.js';
import { run } from '../lab/exec.js';
import { addNamespace, deleteNamespace, pidAlive } from '../lab/netns.js';

const NETWORK = '198.19.0.0/22';
const WAITING = `waiting for a free /24 in ${NETWORK} (all 3 leased; the first subnet is never handed out)`;

describe.skipIf(rootSkipReason())('a node that loses its subnet or finds none free (needs root: network namespaces, TUN, weftd, CNI plugin)', () => {
  let c: WeftCluster;
  let fullDir = '';
  const made: string[] = [];

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 4, podsPerNode: 0, name: 'subnet-loss', startNodes: false, flags: ['--lease-ttl', '5', '--resync-interval', '5'] });
    await c.weftctl(['init', '--network', NETWORK, '--subnet-len', '24', '--force']);
  }, 60_000);

  afterAll(async () => {
    for (const ns of made.reverse()) await deleteNamespace(ns, { allowFail: true });
    for (const i of [1, 2, 3, 4]) if (c?.nodes.get(i)?.weftd) await c.stopNode(i).catch(() => undefined);
    if (fullDir) await run('umount', ['-l', fullDir]).catch(() => undefined);
    await c?.destroy();
  }, 60_000);

  const events = (i: number, from = 0): LogEvent[] => weftdEvents(c.nodes.get(i)!.weftd!, from);
  const waitEvent = (i: number, name: string, timeoutMs: number, match: (e: LogEvent) => boolean = () => true): Promise<LogEvent> =>
    until(`${name} in node${i}'s log`, () => events(i).find((e) => e.event === name && match(e)), timeoutMs, 100);
  const subnetFileOf = (i: number) => parseSubnetFile(c.subnetEnvText(i), 'subnet.env');
  const plugin = (i: number, command: string, call: PluginCall, extra: Record<string, unknown> = {}): PluginAnswer =>
    callPlugin(join(c.cniOf(i).binDir, 'weft'), c.lab.nodeNs(i), command, pluginConf(c.cniOf(i).confDir, extra), call);
  const addressOf = (a: PluginAnswer): string => ((a.json?.ips as { address: string }[] | undefined)?.[0]?.address ?? '').split('/')[0]!;

  /** A pod's network namespace on node i, made for the plugin to configure (as a runtime makes one). */
  async function podNs(i: number): Promise<PluginCall> {
    const id = randomBytes(4).toString('hex');
    const ns = `${c.lab.prefix}-n${i}c${id}`;
    await addNamespace(ns);
    made.push(ns);
    return { containerId: `c${id}`, netns: `/run/netns/${ns}` };
  }

  it('--state-dir on a full filesystem: weftd names each file it cannot write and what it was doing, and still leases and forwards', async () => {
    fullDir = join(c.lab.dir, 'full');
    mkdirSync(fullDir);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', fullDir]);
    mkdirSync(join(fullDir, 'state'));
    await run('dd', ['if=/dev/zero', `of=${join(fullDir, 'fill')}`, 'bs=4k']).catch(() => undefined);
    const state = join(fullDir, 'state');
    await c.startNode(1, 0, ['--state-dir', state]);
    const failed = events(1).filter((e) => e.event === 'state_write_failed');
    expect(failed.map((e) => e.path)).toEqual([join(state, 'weftd.lock'), join(state, 'subnet')]);
    expect(failed[0]!.msg).toMatch(new RegExp(`^cannot write this weftd's pid into the instance lock ${join(state, 'weftd.lock')}: ENOSPC`));
    expect(failed[1]!.msg).toMatch(new RegExp(`^cannot record the subnet held in ${join(state, 'subnet')} \\(write\\): ENOSPC`));
    expect(subnetFileOf(1).held?.subnet).toEqual(parseCidr(c.nodes.get(1)!.subnet!));
  });

  it('a full network: a fourth node stays up, not ready, says why in /readyz, /status and the subnet file; the CNI plugin answers "try again later"', async () => {
    await c.startNode(2);
    await c.startNode(3, 0, ['--release-on-exit']);
    const p4 = await c.launchNode(4);
    await waitEvent(4, 'network_full', 20_000);
    await sleep(500);
    expect(pidAlive(p4.pid)).toBe(true);
    const readyz = await c.http(4, '/readyz');
    expect(readyz.code).toBe(503);
    expect(JSON.parse(readyz.body)).toMatchObject({ status: 'not_ready', reasons: [`no subnet: ${WAITING}`] });
    const status = JSON.parse((await c.http(4, '/status')).body) as { state: string; subnet: string | null; noSubnet: string };
    expect(status).toMatchObject({ state: 'waiting', subnet: null, noSubnet: WAITING });
    expect(subnetFileOf(4).none?.reason).toBe(WAITING);
    await c.installCni(4);
    const add = plugin(4, 'ADD', await podNs(4));
    expect(add.json).toMatchObject({ code: CniCode.TryAgainLater, msg: expect.stringContaining(WAITING) });
  }, 60_000);

  it('a frozen node whose subnet the waiting node takes: no ADD on it hands out that subnet once the other holds it; it then waits, CHECK fails its pods, and it takes the next subnet released', async () => {
    const s2 = c.nodes.get(2)!.subnet!;
    await c.installCni(2);
    const oldPods: { call: PluginCall; result: Record<string, unknown> }[] = [];
    for (let k = 0; k < 2; k++) {
      const call = await podNs(2);
      const a = plugin(2, 'ADD', call);
      expect(a.status, JSON.stringify(a.json)).toBe(0);
      expect(contains(parseCidr(s2), parseIp(addressOf(a)))).toBe(true);
      oldPods.push({ call, result: a.json! });
    }

    // Freeze node2's weftd past its TTL; node4, waiting, takes its subnet. Pods keep being added on node2 meanwhile.
    const adds: { started: number; answer: PluginAnswer }[] = [];
    const loopCall = await podNs(2);
    let adding = true;
    const addLoop = (async () => {
      while (adding) {
        const started = Date.now();
        const answer = plugin(2, 'ADD', loopCall);
        adds.push({ started, answer });
        if (answer.status === 0) expect(plugin(2, 'DEL', loopCall).status).toBe(0);
        await sleep(150);
      }
    })();
    const weftd2 = c.nodes.get(2)!.weftd!;
    weftd2.kill('SIGSTOP');
    let taken: LogEvent;
    try {
      taken = await waitEvent(4, 'lease_acquired', 30_000, (e) => e.subnet === s2);
      await waitEvent(4, 'ready', 10_000);
      await sleep(1000);
    } finally {
      weftd2.kill('SIGCONT');
    }
    const lost = await waitEvent(2, 'subnet_lost', 10_000);
    expect(lost).toMatchObject({ subnet: s2, reason: 'now leased by node node4 (198.18.0.4)' });
    await until('node2 marks its subnet file', () => subnetFileOf(2).none !== undefined, 5000, 50);
    await sleep(500);
    adding = false;
    await addLoop;

    const afterTaken = adds.filter((a) => a.started > taken.time);
    expect(afterTaken.length).toBeGreaterThan(3);
    const leaked = afterTaken.filter((a) => a.answer.status === 0 && contains(parseCidr(s2), parseIp(addressOf(a.answer))));
    expect(leaked.map((a) => addressOf(a.answer))).toEqual([]);
    for (const a of afterTaken) expect(a.answer.json).toMatchObject({ code: CniCode.TryAgainLater });
    expect(adds.some((a) => a.answer.status === 0)).toBe(true);

    // node2 is up, waiting, and says what it lost; the file names no subnet, and its pods fail CHECK.
    expect(pidAlive(weftd2.pid)).toBe(true);
    const waiting = `lost ${s2}: now leased by node node4 (198.18.0.4); ${WAITING}`;
    await until('node2 waits for a free subnet', async () => JSON.parse((await c.http(2, '/status')).body).noSubnet === waiting, 10_000);
    expect(JSON.parse((await c.http(2, '/readyz')).body)).toMatchObject({ status: 'not_ready', reasons: [`no subnet: ${waiting}`] });
    expect(subnetFileOf(2).none).toMatchObject({ reason: waiting, lost: parseCidr(s2) });
    for (const p of oldPods) {
      const check = plugin(2, 'CHECK', p.call, { prevResult: p.result });
      expect(check.json).toMatchObject({ code: CniCode.AddressOutsideSubnet, msg: expect.stringContaining(`the node no longer holds its subnet ${s2}`) });
    }

    // node3 leaves, giving its subnet back: node2 takes it within 5 s.
    const s3 = c.nodes.get(3)!.subnet!;
    const released = c.nodes.get(3)!.weftd!;
    await c.stopNode(3);
    const releasedAt = weftdEvents(released).find((e) => e.event === 'lease_released')!.time;
    const ready2 = await waitEvent(2, 'ready', 10_000, (e) => e.subnet === s3);
    expect(ready2.time - releasedAt).toBeLessThan(5000);
    expect(subnetFileOf(2).held?.subnet).toEqual(parseCidr(s3));

    // New pods wait for the old ones to go (their addresses no longer route), then get addresses from the new subnet.
    const fresh = await podNs(2);
    expect(plugin(2, 'ADD', fresh).json).toMatchObject({ code: CniCode.SubnetChanged, msg: expect.stringContaining(`earlier subnet ${s2}`) });
    for (const p of oldPods) expect(plugin(2, 'DEL', p.call).status).toBe(0);
    const added = plugin(2, 'ADD', fresh);
    expect(added.status, JSON.stringify(added.json)).toBe(0);
    expect(contains(parseCidr(s3), parseIp(addressOf(added)))).toBe(true);
    expect(plugin(2, 'CHECK', fresh, { prevResult: added.json }).status).toBe(0);
    expect(await c.lab.ping(c.lab.nodeNs(1), addressOf(added), { count: 2, timeoutS: 5 })).toBe(true);
    expect(plugin(2, 'DEL', fresh).status).toBe(0);
  }, 120_000);

  it('a lease outside the network is counted by reason on /metrics and shown by weftctl leases as ignored, with no TTL', async () => {
    const key = `${PREFIX}/network/subnets/198.19.200.0-24`;
    await c.lab.etcdctl(['put', key, JSON.stringify({ nodeName: 'stray', publicIp: '198.18.0.77', port: 4790, vni: 1, version: 'test', engine: 'native' })]);
    try {
      await until('node1 counts the stray lease', async () => /^weft_ignored_leases\{reason="outside_network"\} 1$/m.test((await c.http(1, '/metrics')).body), 10_000);
      expect((await c.http(1, '/metrics')).body).toMatch(/^weft_ignored_leases\{reason="invalid"\} 0$/m);
      const row = (await c.weftctl(['leases'])).split('\n').find((l) => l.startsWith('198.19.200.0/24'));
      expect(row).toMatch(/^198\.19\.200\.0\/24\s+stray\s+198\.18\.0\.77:4790\s+no TTL\s+ignored \(outside_network\): subnet 198\.19\.200\.0\/24 of node stray is outside the cluster network 198\.19\.0\.0\/22$/);
      const json = JSON.parse(await c.weftctl(['leases', '--json'])) as { leases: { subnet: string; expiresInS: number | null; ignored?: { reason: string } }[] };
      expect(json.leases.find((l) => l.subnet === '198.19.200.0/24')).toMatchObject({ expiresInS: null, ignored: { reason: 'outside_network' } });
      expect(json.leases.filter((l) => !l.ignored).every((l) => typeof l.expiresInS === 'number' && l.expiresInS > 0)).toBe(true);
    } finally {
      await c.lab.etcdctl(['del', key]);
    }
    expect(existsSync(join(c.nodeDir(1), 'subnet.env'))).toBe(true);
    expect(readFileSync(join(c.nodeDir(1), 'subnet.env'), 'utf8')).toMatch(/^WEFT_LEASE_EXPIRES=/m);
  });
});
