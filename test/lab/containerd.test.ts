// The containerd harness on Debian's bridge + host-local + portmap (no weft):
// CRI as kubelet calls it, and nothing of containerd's left behind, even when
// containerd was killed under running sandboxes, the run is aborted, or a
// run was SIGKILLed (the next one cleans up after it).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { installBridgeConflist } from './bridge_conflist.js';
import { CNI_RESULTS_DIR, hostLocalReservations } from './cni_results.js';
import { Containerd, type Sandbox } from './containerd.js';
import { Lab } from './lab.js';
import { deleteNamespace, listNamespaces, mountsUnder, pidAlive } from './netns.js';
import { SANDBOX_IMAGE } from './rootfs.js';

const skip = rootSkipReason();
const ABANDONED = fileURLToPath(new URL('./fixtures/abandoned_containerd.ts', import.meta.url));

/** What the fixture run made before it was killed. */
interface Abandoned {
  labDir: string;
  namespaces: string[];
  dir: string;
  cgroupParent: string;
  containerd: number;
  shims: number[];
  pod: number;
  netns: string;
  resultFiles: string[];
}

describe.skipIf(skip)(`containerd harness (needs root: network namespaces, containerd, runc)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let lab: Lab | undefined;
  let network = '';
  const ipam = (node: number): string => join(lab!.dir, `n${node}`, 'ipam');
  const reservations = (node: number): string[] => hostLocalReservations(ipam(node), network);
  /** The pods' veths on the node's bridge (none before the bridge exists, too). */
  const veths = (node: number): Promise<string[]> => lab!.bridgePorts(node, { missingOk: true });

  /** A Containerd on `node` whose CRI runs Debian's plugins from /usr/lib/cni, as Debian's own config has it. */
  async function containerdOn(node: number): Promise<Containerd> {
    const confDir = join(lab!.dir, `n${node}`, 'net.d');
    await installBridgeConflist(confDir, network, `198.19.${node}.0/24`, ipam(node));
    return Containerd.create(lab!, node, { network, confDir, binDir: '/usr/lib/cni' });
  }

  /** What a dead instance must not leave: processes, mounts, cgroups, result files, its dir, the pods' netns (their veths). */
  async function expectNothingLeft(c: Containerd, node: number, pids: number[]): Promise<void> {
    for (const pid of pids) expect(pidAlive(pid), `pid ${pid}`).toBe(false);
    expect(c.shimPids()).toEqual([]);
    expect(c.shimSockets()).toEqual([]);
    expect(c.podPids()).toEqual([]);
    expect(c.mounts()).toEqual([]);
    expect(c.cniResultFiles()).toEqual([]);
    expect(existsSync(c.dir)).toBe(false);
    expect(readdirSync('/sys/fs/cgroup/pids').filter((d) => d === c.cgroupParent.slice(1))).toEqual([]);
    // Unpinned, a pod's netns goes away, and its veth pair with it (the kernel frees it a moment later).
    await until(`node ${node}'s veths to go`, async () => (await veths(node)).length === 0, 10_000, 100);
  }

  beforeAll(async () => {
    lab = await Lab.create({ nodes: 2, name: 'containerd.test' });
    network = `weft-${lab.prefix}-deb`;
  }, 60_000);

  afterAll(() => lab?.destroy(), 60_000);

  it('serves CRI as kubelet calls it: a sandbox gets an address from host-local, pinned netns, pod cgroup; Stop and Remove leave nothing', async () => {
    const c = await containerdOn(1);
    expect(await c.cri.version()).toMatchObject({ runtimeName: 'containerd', runtimeApiVersion: 'v1' });
    expect(await c.cri.imageStatus(SANDBOX_IMAGE)).toMatchObject({ repoTags: [SANDBOX_IMAGE] });
    // containerd 1.6 has no CNI STATUS: the network is "ready" as soon as a conflist loads.
    expect(await c.cri.status()).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'NetworkReady', status: true })]));

    const s = await c.runSandbox('a');
    expect(s.ip).toMatch(/^198\.19\.1\.\d+$/);
    expect(s.netns.startsWith(join(c.dir, 'state'))).toBe(true);
    expect(c.mounts()).toContain(s.netns);
    expect(c.podPids()).toContain(s.pid);
    expect(c.shimPids()).toHaveLength(1);
    expect(c.shimSockets()).toHaveLength(1);
    expect(reservations(1)).toEqual([s.ip]);
    const eth0 = await c.execIn(s, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(eth0.stdout).toContain(`inet ${s.ip}/24`);
    // containerd attaches loopback too, from the same bin_dir.
    expect((await c.execIn(s, ['ip', '-o', 'link', 'show', 'lo'])).stdout).toContain('UP');
    expect(await lab!.ping(lab!.nodeNs(1), s.ip)).toBe(true);
    expect(c.cniResultFiles().sort()).toEqual([`${network}-${s.id}-eth0`, `cni-loopback-${s.id}-lo`].sort());

    await c.cri.stopPodSandbox(s.id);
    expect(reservations(1)).toEqual([]);
    expect(c.mounts()).not.toContain(s.netns);
    await c.cri.removePodSandbox(s.id);
    expect(await c.cri.listPodSandbox()).toEqual([]);
    expect(c.cniResultFiles()).toEqual([]);
    expect(pidAlive(s.pid)).toBe(false);
    expect(await veths(1)).toEqual([]);

    const b = await c.runSandbox('b');
    await c.destroy(); // removes b through CRI first
    await c.destroy(); // idempotent
    expect(reservations(1)).toEqual([]);
    await expectNothingLeft(c, 1, [b.pid]);
    await expect(c.runSandbox('again')).rejects.toThrow(/destroyed/);
  }, 120_000);

  it('destroy() after containerd was SIGKILLed under running sandboxes: no shim, pod process, mount, cgroup, result file or netns left', async () => {
    const c = await containerdOn(2);
    const pods: Sandbox[] = [await c.runSandbox('k1'), await c.runSandbox('k2')];
    const shims = c.shimPids();
    expect(shims).toHaveLength(2);
    await c.stop('SIGKILL');
    expect(c.running).toBe(false);
    // The shims and the pods outlive containerd, as on a real node.
    for (const pid of [...shims, ...pods.map((p) => p.pid)]) expect(pidAlive(pid)).toBe(true);
    await c.destroy();
    await expectNothingLeft(c, 2, [...shims, ...pods.map((p) => p.pid)]);
  }, 120_000);

  it("destroySync() (the lab's exit handler) with containerd and a sandbox running leaves nothing either", async () => {
    const c = await containerdOn(1);
    const s = await c.runSandbox('x');
    const pids = [c.pid!, ...c.shimPids(), s.pid];
    c.destroySync();
    await expectNothingLeft(c, 1, pids);
  }, 120_000);

  it('create() removes what a run killed with SIGKILL left of its containerd: shims, pod, containerd, mounts, cgroups, cache files, dir', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', ABANDONED], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let left: Abandoned | undefined;
    try {
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      left = JSON.parse(await until(`the fixture's report (stderr: ${err})`, () => out.includes('\n') && out.split('\n')[0], 60_000, 100)) as Abandoned;
      child.kill('SIGKILL');
      await exited;
      // Its exit handlers never ran: the shims and the pod outlive it (containerd gets its pdeathsig).
      for (const pid of [...left.shims, left.pod]) expect(pidAlive(pid), `pid ${pid}`).toBe(true);
      expect(mountsUnder(left.dir)).toContain(left.netns);

      const c = await containerdOn(2);
      for (const pid of [left.containerd, ...left.shims, left.pod]) expect(pidAlive(pid), `pid ${pid}`).toBe(false);
      expect(mountsUnder(left.dir)).toEqual([]);
      expect(existsSync(left.dir)).toBe(false);
      expect(existsSync(join('/sys/fs/cgroup/pids', left.cgroupParent))).toBe(false);
      expect(left.resultFiles).toHaveLength(2);
      for (const f of left.resultFiles) expect(existsSync(join(CNI_RESULTS_DIR, f)), f).toBe(false);
      await c.destroy();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      // The rest of the dead run is the lab's stale cleanup's business; this test started it, so it removes it now.
      if (left) {
        const names = await listNamespaces();
        for (const ns of [...left.namespaces].reverse()) if (names.includes(ns)) await deleteNamespace(ns, { allowFail: true });
        rmSync(left.labDir, { recursive: true, force: true });
      }
    }
  }, 120_000);
});
