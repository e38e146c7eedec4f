// The containerd harness on Debian's bridge + host-local + portmap (no weft):
// CRI as kubelet calls it, and nothing of containerd's left behind, even when
// containerd was killed under running sandboxes or the run is aborted.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { until } from '../harness/until.js';
import { Containerd, type Sandbox } from './containerd.js';
import { Lab } from './lab.js';
import { pidAlive } from './netns.js';
import { SANDBOX_IMAGE } from './rootfs.js';

const isRoot = process.getuid?.() === 0;

/** Debian's bridge (cni0, gateway, no masquerade, MTU 1464) with host-local, then portmap. */
function conflist(name: string, subnet: string, dataDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name,
    plugins: [
      { type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true, ipMasq: false, mtu: 1464, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
}

describe.skipIf(!isRoot)('containerd harness (needs root: network namespaces, containerd, runc)', () => {
  let lab: Lab | undefined;
  let network = '';
  const ipam = (node: number): string => join(lab!.dir, `n${node}`, 'ipam');
  const reservations = (node: number): string[] => {
    const d = join(ipam(node), network);
    return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
  };
  /** The pods' veths on the node's bridge ('' before the bridge exists, too). */
  const veths = async (node: number): Promise<string> => (await lab!.exec(lab!.nodeNs(node), ['ip', '-o', 'link', 'show', 'master', 'cni0'], { allowFail: true })).stdout.trim();

  /** A Containerd on `node` whose CRI runs Debian's plugins from /usr/lib/cni, as Debian's own config has it. */
  async function containerdOn(node: number): Promise<Containerd> {
    const confDir = join(lab!.dir, `n${node}`, 'net.d');
    await mkdir(confDir, { recursive: true });
    await writeFile(join(confDir, `${network}.conflist`), conflist(network, `198.19.${node}.0/24`, ipam(node)));
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
    await until(`node ${node}'s veths to go`, async () => (await veths(node)) === '', 10_000, 100);
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
    expect(await veths(1)).toBe('');

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
});
