// Kubernetes' own path puts pods on weft: containerd 1.6's CRI plugin, driven
// as kubelet drives it (RunPodSandbox, PodSandboxStatus, StopPodSandbox,
// RemovePodSandbox), runs weft's plugin from the one bin_dir that
// `weftctl cni install` filled, on each of three weftd nodes. Addresses from
// the node's subnet, every sandbox and node reaching every other, hostPort,
// 20 parallel sandboxes, removal (DEL twice) releasing everything, and a
// sandbox asked for while weftd is down.

import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contains, parseCidr, parseIp } from '../../src/net/ipv4.js';
import { CriError } from '../harness/cri_client.js';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { hostLocalReservations } from '../lab/cni_results.js';
import { HTTP_GET_SCRIPT, WeftCluster } from '../lab/cluster.js';
import type { Containerd, Sandbox } from '../lab/containerd.js';

const skip = rootSkipReason();
const NODES = [1, 2, 3];

describe.skipIf(skip)(`containerd CRI sandboxes on weft${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let c: WeftCluster;
  const cd = new Map<number, Containerd>();
  const pod = new Map<number, Sandbox>();

  const inSubnet = (node: number, ip: string): boolean => contains(parseCidr(c.nodes.get(node)!.subnet!), parseIp(ip));
  const reserved = (node: number): string[] => hostLocalReservations(c.cniOf(node).ipamDir, c.cniOf(node).network);
  const attachments = (node: number): string[] => {
    const d = join(c.cniOf(node).dataDir, c.cniOf(node).network);
    return existsSync(d) ? readdirSync(d) : [];
  };

  beforeAll(async () => {
    // --release-on-exit: a stopped weftd removes its subnet file, as a node that has not leased yet has none.
    c = await WeftCluster.create({ nodes: 3, podsPerNode: 0, name: 'cni-containerd', flags: ['--release-on-exit'] });
    for (const i of NODES) {
      const runtime = await c.containerd(i);
      cd.set(i, runtime);
      pod.set(i, await runtime.runSandbox(`s${i}`));
    }
  }, 120_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it("gives each sandbox an address from its node's subnet, as weft's plugin recorded it", () => {
    for (const i of NODES) {
      const s = pod.get(i)!;
      expect(inSubnet(i, s.ip), `s${i} ${s.ip} in ${c.nodes.get(i)!.subnet}`).toBe(true);
      expect(reserved(i)).toEqual([s.ip]);
      const state = JSON.parse(readFileSync(join(c.cniOf(i).dataDir, c.cniOf(i).network, `${s.id}:eth0.json`), 'utf8')) as { netns: string; ips: string[] };
      expect(state.netns).toBe(s.netns);
      expect(state.ips).toEqual([`${s.ip}/24`]);
    }
  });

  it('every sandbox reaches every other sandbox and every node, and every node every sandbox', async () => {
    const failed: string[] = [];
    for (const a of NODES) {
      for (const b of NODES) {
        const from = pod.get(a)!;
        if (a !== b && !(await cd.get(a)!.ping(from, pod.get(b)!.ip))) failed.push(`s${a} -> s${b} ${pod.get(b)!.ip}`);
        if (!(await cd.get(a)!.ping(from, c.lab.nodeIp(b)))) failed.push(`s${a} -> node${b}`);
        if (!(await c.lab.ping(c.lab.nodeNs(a), pod.get(b)!.ip, { count: 1, timeoutS: 3 }))) failed.push(`node${a} -> s${b}`);
      }
    }
    expect(failed).toEqual([]);
  }, 60_000);

  it("hostPort 8080 of a pod on node 2 answers at node 2's address from node 1 and from a sandbox on node 3, sources not NATed", async () => {
    const runtime = cd.get(2)!;
    const web = await runtime.runSandbox('web', { portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 8080 }] });
    expect(inSubnet(2, web.ip)).toBe(true);
    await runtime.runContainer(web, 'httpd', ['sh', '-c', 'echo hello-from-node2 > /tmp/index.html && exec httpd -f -v -p 80 -h /tmp']);
    const url = `http://${c.lab.nodeIp(2)}:8080/index.html`;
    const fromNode = async (): Promise<string> => (await c.httpGet(1, url).catch(() => ({ body: '' }))).body;
    // httpd listens a moment after StartContainer returns.
    await until('hostPort from node 1', async () => (await fromNode()).includes('hello-from-node2'), 15_000, 200);
    const fromPod = await cd.get(3)!.execIn(pod.get(3)!, [process.execPath, '-e', HTTP_GET_SCRIPT, url], { allowFail: true });
    expect(fromPod.stdout, fromPod.stderr).toContain('hello-from-node2');
    // busybox httpd -v logs each client's address (the CRI log, one "<time> stderr F <line>" per line): the senders' own.
    const log = readFileSync(join(web.config.logDirectory!, 'httpd.log'), 'utf8');
    for (const from of [c.lab.nodeIp(1), pod.get(3)!.ip]) expect(log, log).toContain(from);
    const nat = async (): Promise<string> => (await c.lab.exec(c.lab.nodeNs(2), ['iptables-save', '-t', 'nat'])).stdout;
    expect(await nat()).toMatch(/--dport 8080/);
    await runtime.removeSandbox(web.id);
    expect(await nat()).not.toMatch(/--dport 8080/);
  }, 60_000);

  it('20 sandboxes run at once get 20 distinct addresses; removing them (DEL twice each) releases every address, state file, veth, netns and cache file', async () => {
    const runtime = cd.get(1)!;
    const s1 = pod.get(1)!;
    const names = Array.from({ length: 20 }, (_, k) => `par${k}`);
    const many = await Promise.all(names.map((n) => runtime.runSandbox(n, { timeoutMs: 120_000 })));
    expect(new Set(many.map((s) => s.ip)).size).toBe(20);
    for (const s of many) expect(inSubnet(1, s.ip), s.ip).toBe(true);
    expect(reserved(1)).toHaveLength(21);
    expect(await c.lab.bridgePorts(1)).toHaveLength(21);
    const dels = (runtime.log().match(/TearDown network for sandbox/g) ?? []).length;

    await Promise.all(many.map((s) => runtime.removeSandbox(s.id)));
    expect(reserved(1)).toEqual([s1.ip]);
    expect(attachments(1)).toEqual([`${s1.id}:eth0.json`]);
    expect(await c.lab.bridgePorts(1)).toHaveLength(1);
    for (const s of many) expect(existsSync(s.netns), s.netns).toBe(false);
    expect(runtime.mounts().filter((m) => m.includes('/netns/'))).toEqual([s1.netns]);
    expect(runtime.cniResultFiles().sort()).toEqual([`${c.cniOf(1).network}-${s1.id}-eth0`, `cni-loopback-${s1.id}-lo`].sort());
    // StopPodSandbox's DEL and RemovePodSandbox's (no netns, no prevResult) both succeeded.
    expect((runtime.log().match(/TearDown network for sandbox/g) ?? []).length - dels).toBe(40);
    expect((await runtime.cri.listPodSandbox()).map((s) => s.id)).toEqual([s1.id]);
  }, 240_000);

  it("while weftd is down a new sandbox fails with weft's try-again-later error and leaves nothing, a removed one is released quietly, one whose state is gone is released with a note in containerd's log; once weftd is back a sandbox runs", async () => {
    const runtime = cd.get(3)!;
    const doomed = await runtime.runSandbox('doomed');
    const orphan = await runtime.runSandbox('orphan');
    await c.stopNode(3, 'SIGTERM');
    expect(existsSync(join(c.nodeDir(3), 'subnet.env'))).toBe(false);
    // containerd 1.6 calls no CNI STATUS: the network still looks ready to kubelet.
    expect(await runtime.cri.status()).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'NetworkReady', status: true })]));
    const before = runtime.log().length;
    const err = await runtime.runSandbox('late').then(
      () => undefined,
      (e: unknown) => e,
    );
    // Code 11's message (libcni passes on the message, not the code).
    expect(err).toBeInstanceOf(CriError);
    expect((err as CriError).details).toMatch(/plugin type="weft" failed \(add\): node subnet file .* does not exist: weftd has not leased a subnet on this node yet/);
    // containerd undid the half-made sandbox (its DEL found nothing to release).
    expect((await runtime.cri.listPodSandbox()).map((s) => s.metadata.name).sort()).toEqual(['doomed', 'orphan', 's3']);
    expect(reserved(3).sort()).toEqual([doomed.ip, orphan.ip, pod.get(3)!.ip].sort());
    expect(await c.lab.bridgePorts(3)).toHaveLength(3);

    // No stored state and no subnet file: weft releases host-local's reservation itself and says so on stderr, which
    // containerd logs for a plugin that succeeded (libcni passes a failed one's stderr into the error instead).
    const stateFiles = attachments(3).filter((f) => f.startsWith(orphan.id));
    expect(stateFiles).toHaveLength(1);
    rmSync(join(c.cniOf(3).dataDir, c.cniOf(3).network, stateFiles[0]!));
    await runtime.removeSandbox(orphan.id);
    expect(reserved(3).sort()).toEqual([doomed.ip, pod.get(3)!.ip].sort());
    expect(runtime.log().slice(before)).toMatch(new RegExp(`weft DEL ${orphan.id.slice(0, 12)}: no stored state and no usable subnet file .*releasing host-local's reservation directly`));
    const afterOrphan = runtime.log().length;

    // Both DELs without a subnet file: the first replays the stored config, the second has nothing to undo; weft has nothing to say.
    await runtime.removeSandbox(doomed.id);
    expect(reserved(3)).toEqual([pod.get(3)!.ip]);
    expect(await c.lab.bridgePorts(3)).toHaveLength(1);
    expect(runtime.log().slice(afterOrphan)).not.toMatch(/weft DEL/);

    await c.startNode(3);
    const late = await runtime.runSandbox('late');
    expect(inSubnet(3, late.ip)).toBe(true);
    expect(await cd.get(1)!.ping(pod.get(1)!, late.ip)).toBe(true);
    await runtime.removeSandbox(late.id);
    expect(reserved(3)).toEqual([pod.get(3)!.ip]);
  }, 90_000);
});
