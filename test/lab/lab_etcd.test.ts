// The lab's etcd fault controls: stop it, start it on its old data, start it wiped.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from './netns.js';
import { Lab } from './lab.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('lab etcd stop/start (needs root: creates network namespaces)', () => {
  let lab: Lab | undefined;

  beforeAll(async () => {
    lab = await Lab.create({ nodes: 1, name: 'lab_etcd.test' });
  }, 30_000);
  afterAll(async () => {
    await lab?.destroy();
  }, 30_000);

  const get = async (l: Lab, key: string): Promise<string> => l.etcdctl(['get', '--print-value-only', key]);
  const health = async (l: Lab): Promise<number> =>
    (await l.exec(l.nodeNs(1), ['etcdctl', `--endpoints=${l.etcdEndpoint}`, '--dial-timeout=1s', '--command-timeout=1s', 'endpoint', 'health'], {
      allowFail: true,
      env: { ETCDCTL_API: '3' },
    })).code;

  it('stops etcd by PID and starts it again on the same data', async () => {
    const l = lab!;
    await l.etcdctl(['put', '/weft-lab/kept', 'yes']);
    const pid = l.etcdProcess.pid;
    const exit = await l.stopEtcd();
    expect(exit.signal === 'SIGTERM' || exit.code === 0 || exit.code === 143).toBe(true);
    expect(pidAlive(pid)).toBe(false);
    expect(l.etcdRunning).toBe(false);
    expect(await health(l)).not.toBe(0);
    expect(await l.stopEtcd()).toEqual(exit); // idempotent
    await l.startEtcd();
    expect(l.etcdRunning).toBe(true);
    expect(l.etcdProcess.pid).not.toBe(pid);
    expect(await health(l)).toBe(0);
    expect(await get(l, '/weft-lab/kept')).toBe('yes\n');
    await expect(l.startEtcd()).rejects.toThrow(/already running/);
  }, 40_000);

  it('starts etcd wiped: no keys left', async () => {
    const l = lab!;
    await l.stopEtcd();
    await l.startEtcd({ wipe: true });
    expect(await get(l, '/weft-lab/kept')).toBe('');
    await l.etcdctl(['put', '/weft-lab/fresh', '1']);
    expect(await get(l, '/weft-lab/fresh')).toBe('1\n');
  }, 40_000);

  it('destroy stops the restarted etcd too', async () => {
    const l = lab!;
    const pid = l.etcdProcess.pid;
    await l.destroy();
    expect(pidAlive(pid)).toBe(false);
  }, 30_000);
});

describe.skipIf(!isRoot)('lab etcd cluster of three: per-member faults (needs root: creates network namespaces)', () => {
  let lab: Lab | undefined;

  beforeAll(async () => {
    lab = await Lab.create({ nodes: 1, name: 'lab_etcd.test cluster', etcdMembers: 3 });
  }, 40_000);
  afterAll(async () => {
    await lab?.destroy();
  }, 30_000);

  /** Reads `key` from member k alone, linearizably (so only with a quorum behind it); undefined if it does not answer in 2 s. */
  const getAt = async (l: Lab, k: number, key: string): Promise<string | undefined> => {
    const m = l.etcd.member(k);
    const r = await l.exec(l.nodeNs(1), ['etcdctl', `--endpoints=${m.clientUrl}`, '--dial-timeout=1s', '--command-timeout=2s', 'get', '--print-value-only', key], {
      allowFail: true,
      env: { ETCDCTL_API: '3' },
    });
    return r.code === 0 ? r.stdout : undefined;
  };

  it('builds three members at .251-.253 that agree on one leader; single-etcd controls refuse a cluster', async () => {
    const l = lab!;
    expect(l.etcdEndpoint).toBe('http://198.18.0.251:2379,http://198.18.0.252:2379,http://198.18.0.253:2379');
    expect(l.etcd.members.map((m) => m.ns)).toEqual([1, 2, 3].map((k) => `${l.prefix}-e${k}`));
    const out = await l.etcdctl(['member', 'list']);
    expect(out.trim().split('\n')).toHaveLength(3);
    expect([1, 2, 3]).toContain(await l.etcd.leader());
    await l.etcdctl(['put', '/weft-lab/a', '1']);
    for (const k of [1, 2, 3]) expect(await getAt(l, k, '/weft-lab/a')).toBe('1\n');
    await expect(l.stopEtcd()).rejects.toThrow(/cluster of 3/);
  }, 30_000);

  it('SIGKILLs the leader: the other two elect another and serve; restarted, it catches up', async () => {
    const l = lab!;
    const old = await l.etcd.leader();
    const pid = l.etcd.process(old).pid;
    expect((await l.etcd.stop(old, 'SIGKILL')).signal).toBe('SIGKILL');
    expect(pidAlive(pid)).toBe(false);
    const next = await l.etcd.waitLeader();
    expect(next).not.toBe(old);
    await l.etcdctl(['put', '/weft-lab/b', '2']);
    await l.etcd.start(old);
    expect(await getAt(l, old, '/weft-lab/b')).toBe('2\n');
  }, 40_000);

  it('cuts a member off (no answer from it, the rest serve) and heals it (it catches up)', async () => {
    const l = lab!;
    const k = 3;
    await l.etcd.partition(k);
    expect(await getAt(l, k, '/weft-lab/a')).toBeUndefined();
    await l.etcd.waitLeader();
    await l.etcdctl(['put', '/weft-lab/c', '3']);
    expect(l.etcd.reachable.map((m) => m.index)).toEqual([1, 2]);
    await expect(l.etcd.partition(k)).rejects.toThrow(/already cut off/);
    await l.etcd.heal(k);
    let got: string | undefined;
    for (let t = 0; t < 50 && got !== '3\n'; t++) got = await getAt(l, k, '/weft-lab/c');
    expect(got).toBe('3\n');
  }, 40_000);

  it('cuts a member from its peers only: it still answers serializable reads, cannot serve linearizable ones, and catches up when healed', async () => {
    const l = lab!;
    const k = 1;
    const m = l.etcd.member(k);
    await l.etcd.partition(k, { peersOnly: true });
    await l.etcd.waitLeader();
    await l.etcdctl(['put', '/weft-lab/d', '4']);
    const serializable = await l.exec(l.nodeNs(1), ['etcdctl', `--endpoints=${m.clientUrl}`, '--command-timeout=2s', 'get', '--consistency=s', '--print-value-only', '/weft-lab/a'], { env: { ETCDCTL_API: '3' } });
    expect(serializable.stdout).toBe('1\n');
    expect(await getAt(l, k, '/weft-lab/d')).toBeUndefined();
    await l.etcd.heal(k);
    let got: string | undefined;
    for (let t = 0; t < 50 && got !== '4\n'; t++) got = await getAt(l, k, '/weft-lab/d');
    expect(got).toBe('4\n');
  }, 40_000);

  it('replaces a member with an empty data directory (member remove, add, start existing): it gets every key back', async () => {
    const l = lab!;
    const k = 2;
    const before = (await l.etcdctl(['member', 'list'])).split('\n').find((x) => x.includes(' e2,'))?.split(', ')[0];
    await l.etcd.replace(k);
    const after = (await l.etcdctl(['member', 'list'])).split('\n').find((x) => x.includes(' e2,'))?.split(', ')[0];
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    for (const [key, v] of [['/weft-lab/a', '1'], ['/weft-lab/b', '2'], ['/weft-lab/c', '3']] as const) expect(await getAt(l, k, key)).toBe(`${v}\n`);
  }, 40_000);
});
