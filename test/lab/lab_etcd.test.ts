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
