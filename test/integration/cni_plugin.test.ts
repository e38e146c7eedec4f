// The weft CNI plugin executed as a runtime executes it, in a namespace of its
// own with real bridge, host-local and veths: ADD, CHECK, DEL (twice, with the
// netns or the state gone; as containerd repeats it), a failed ADD undoing itself, the node's subnet
// changing under a pod, GC, STATUS, and bad input leaving nothing behind.
// (podman's own calls are in test/e2e/cni_podman.test.ts.)

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniCode } from '../../src/cni/spec.js';
import { formatNoSubnet } from '../../src/host/subnet_env.js';
import { parseCidr } from '../../src/net/ipv4.js';
import { callPlugin, pluginConf, type PluginAnswer, type PluginCall } from '../harness/cni_plugin.js';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { hostLocalReservations } from '../lab/cni_results.js';
import { WEFTCTL } from '../lab/cluster.js';
import { addNamespace, deleteNamespace, ipIn } from '../lab/netns.js';

const skip = rootSkipReason();
const prefix = `wl${process.pid % 10000}${randomBytes(2).toString('hex')}`;
const nodeNs = `${prefix}-cnode`;
const made: string[] = [];
let dir = '';
let bin = '';
let conf: Record<string, unknown> = {};

function subnetFile(third: number, extra = ''): void {
  writeFileSync(join(dir, 'subnet.env'), `FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.${third}.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n${extra}`);
}

async function pod(name: string): Promise<PluginCall> {
  const ns = `${prefix}-${name}`;
  await addNamespace(ns);
  made.push(ns);
  return { containerId: `${name}-${randomBytes(4).toString('hex')}`, netns: `/run/netns/${ns}` };
}

const plugin = (command: string, call: PluginCall, stdin: string | Record<string, unknown> = conf) => callPlugin(join(bin, 'weft'), nodeNs, command, stdin, call);
const reservations = (): string[] => hostLocalReservations(join(dir, 'ipam'), 'wtest');
const states = (): string[] => (existsSync(join(dir, 'state', 'wtest')) ? readdirSync(join(dir, 'state', 'wtest')) : []);
const veths = async (): Promise<string> => ipIn(nodeNs, ['-o', 'link', 'show', 'type', 'veth']);
const addressOf = (json: Record<string, unknown> | undefined): string => ((json?.ips as { address: string }[] | undefined)?.[0]?.address ?? '');

describe.skipIf(skip)(`CNI plugin executed in a namespace${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cni-'));
    bin = join(dir, 'bin');
    await addNamespace(nodeNs);
    made.push(nodeNs);
    execFileSync(process.execPath, [WEFTCTL, 'cni', 'install', '--bin-dir', bin, '--conf-dir', join(dir, 'conf'), '--network-name', 'wtest', '--subnet-file', join(dir, 'subnet.env'), '--data-dir', join(dir, 'state'), '--ipam-dir', join(dir, 'ipam')]);
    conf = pluginConf(join(dir, 'conf'));
    subnetFile(4);
  });

  afterAll(async () => {
    for (const ns of made.reverse()) await deleteNamespace(ns, { allowFail: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ADD gives an address in the subnet on the bridge, CHECK passes, DEL releases it and is idempotent', async () => {
    const p = await pod('a');
    const add = plugin('ADD', p);
    expect(add.status, add.stderr).toBe(0);
    expect(add.json).toMatchObject({ cniVersion: '1.0.0', ips: [{ gateway: '198.19.4.1' }] });
    expect(addressOf(add.json)).toMatch(/^198\.19\.4\.\d+\/24$/);
    expect(await ipIn(nodeNs, ['-o', '-4', 'addr', 'show', 'dev', 'cni0'])).toContain('198.19.4.1/24');
    expect(await ipIn(nodeNs, ['-o', 'link', 'show', 'dev', 'cni0'])).toContain('mtu 1400');
    const inPod = await ipIn(p.netns!.split('/').pop()!, ['route', 'show', 'default']);
    expect(inPod).toContain('default via 198.19.4.1');
    expect(reservations()).toEqual([addressOf(add.json).split('/')[0]]);
    expect(states()).toEqual([`${p.containerId}:eth0.json`]);

    const check = plugin('CHECK', p, { ...conf, prevResult: add.json });
    expect(check.status, JSON.stringify(check.json)).toBe(0);
    expect(plugin('ADD', p).json).toMatchObject({ code: CniCode.InvalidConfig, msg: expect.stringContaining('already attached') });
    expect(reservations()).toHaveLength(1);

    expect(plugin('DEL', p).status).toBe(0);
    expect(reservations()).toEqual([]);
    expect(states()).toEqual([]);
    expect(await veths()).toBe('');
    expect(plugin('DEL', p).status).toBe(0);
  });

  it('DEL releases the address when the netns is gone, and when the stored state or the subnet file is too', async () => {
    for (const lose of ['netns', 'state', 'state and subnet file'] as const) {
      const p = await pod(`d${lose.length}`);
      expect(plugin('ADD', p).status).toBe(0);
      expect(reservations()).toHaveLength(1);
      if (lose === 'netns') await deleteNamespace(p.netns!.split('/').pop()!);
      else rmSync(join(dir, 'state', 'wtest', `${p.containerId}:eth0.json`));
      if (lose === 'state and subnet file') rmSync(join(dir, 'subnet.env'));
      const del = plugin('DEL', p);
      expect(del.status, `${lose}: ${del.stderr}`).toBe(0);
      expect(reservations(), lose).toEqual([]);
      expect(states(), lose).toEqual([]);
      subnetFile(4);
      // The runtime deletes the pod's netns after DEL, and the veth pair with it.
      if (lose !== 'netns') await deleteNamespace(p.netns!.split('/').pop()!);
    }
    // The kernel frees a deleted netns, and the veth pair in it, a moment later.
    await until('the veths to go with their netns', async () => (await veths()) === '', 5000, 50);
  });

  it('as containerd 1.6 calls it: CNI_PATH is the plugin dir alone, DEL comes twice, the second without CNI_NETNS, quiet even with no subnet file', async () => {
    const p = await pod('ctrd');
    const add = plugin('ADD', { ...p, path: bin });
    expect(add.status, JSON.stringify(add.json)).toBe(0);
    expect(reservations()).toHaveLength(1);
    expect(plugin('DEL', { ...p, path: bin }).status).toBe(0);
    expect(reservations()).toEqual([]);
    expect(await veths()).toBe('');
    rmSync(join(dir, 'subnet.env'));
    const again = plugin('DEL', { containerId: p.containerId, path: bin });
    subnetFile(4);
    expect(again.status).toBe(0);
    expect(again.stderr).toBe('');
    expect(states()).toEqual([]);
  });

  it('a failed ADD undoes itself: no reservation, no state, no veth', async () => {
    const notNetns = join(dir, 'not-a-netns');
    writeFileSync(notNetns, '');
    const add = plugin('ADD', { containerId: 'broken', netns: notNetns });
    expect(add.status).not.toBe(0);
    expect(add.json).toMatchObject({ msg: expect.stringContaining('bridge:') });
    expect(reservations()).toEqual([]);
    expect(states()).toEqual([]);
    expect(await veths()).toBe('');
  });

  it('the subnet changed under a pod: ADD names both subnets, CHECK fails the old pod; once it is gone the bridge moves', async () => {
    const old = await pod('old');
    const first = plugin('ADD', old);
    expect(first.status).toBe(0);
    subnetFile(9);
    const next = await pod('new');
    const refused = plugin('ADD', next);
    expect(refused.json).toMatchObject({ code: CniCode.SubnetChanged });
    expect(refused.json?.msg).toContain("the node's subnet is now 198.19.9.0/24");
    expect(refused.json?.msg).toContain('earlier subnet 198.19.4.0/24');
    expect(refused.json?.msg).toContain(addressOf(first.json).split('/')[0]);
    expect(states()).toHaveLength(1);
    const check = plugin('CHECK', old, { ...conf, prevResult: first.json });
    expect(check.json).toMatchObject({ code: CniCode.AddressOutsideSubnet, msg: expect.stringContaining('outside the node\'s current subnet 198.19.9.0/24') });

    expect(plugin('DEL', old).status).toBe(0);
    const moved = plugin('ADD', next);
    expect(moved.status, JSON.stringify(moved.json)).toBe(0);
    expect(addressOf(moved.json)).toMatch(/^198\.19\.9\./);
    const bridgeAddrs = await ipIn(nodeNs, ['-o', '-4', 'addr', 'show', 'dev', 'cni0']);
    expect(bridgeAddrs).toContain('198.19.9.1/24');
    expect(bridgeAddrs).not.toContain('198.19.4.1');
    expect(plugin('DEL', next).status).toBe(0);
    subnetFile(4);
  });

  it('a node that lost its subnet: ADD is "try again later" saying why, CHECK fails its pods naming the lost subnet, STATUS 50, DEL still releases', async () => {
    const held = await pod('held');
    const first = plugin('ADD', held);
    expect(first.status).toBe(0);
    const reason = 'lost 198.19.4.0/24: now leased by node n5 (198.18.0.5); waiting for a free /24 in 198.19.0.0/16';
    writeFileSync(join(dir, 'subnet.env'), formatNoSubnet({ network: parseCidr('198.19.0.0/16'), reason, lost: parseCidr('198.19.4.0/24') }));
    const next = await pod('next');
    const refused = plugin('ADD', next);
    expect(refused.json).toMatchObject({ code: CniCode.TryAgainLater, msg: expect.stringContaining(`this node holds no pod subnet now (${reason})`) });
    expect(states()).toHaveLength(1);
    expect(reservations()).toHaveLength(1);
    const check = plugin('CHECK', held, { ...conf, prevResult: first.json });
    expect(check.json).toMatchObject({ code: CniCode.AddressOutsideSubnet, msg: expect.stringContaining('the node no longer holds its subnet 198.19.4.0/24') });
    expect(plugin('STATUS', {}).json).toMatchObject({ code: CniCode.StatusCannotAdd, msg: expect.stringContaining('holds no pod subnet') });
    expect(plugin('DEL', held).status).toBe(0);
    expect(reservations()).toEqual([]);
    subnetFile(4);
  });

  it('a lease past the expiry the subnet file names: ADD and CHECK are "try again later" (weftd stopped or frozen), until weftd renews it', async () => {
    const held = await pod('stale');
    const first = plugin('ADD', held);
    expect(first.status).toBe(0);
    subnetFile(4, `WEFT_LEASE_EXPIRES=${new Date(Date.now() - 1000).toISOString()}\n`);
    const next = await pod('stale2');
    const refused = plugin('ADD', next);
    expect(refused.json).toMatchObject({ code: CniCode.TryAgainLater, msg: expect.stringMatching(/^the node's lease on 198\.19\.4\.0\/24 expired at .*weftd is stopped, frozen or cut off from etcd/) });
    expect(plugin('CHECK', held, { ...conf, prevResult: first.json }).json).toMatchObject({ code: CniCode.TryAgainLater });
    subnetFile(4, `WEFT_LEASE_EXPIRES=${new Date(Date.now() + 60_000).toISOString()}\n`);
    expect(plugin('CHECK', held, { ...conf, prevResult: first.json }).status).toBe(0);
    const later = plugin('ADD', next);
    expect(later.status, JSON.stringify(later.json)).toBe(0);
    expect(plugin('DEL', next).status).toBe(0);
    expect(plugin('DEL', held).status).toBe(0);
    subnetFile(4);
  });

  it('GC removes the state and reservations of every attachment not listed as valid', async () => {
    const keep = await pod('keep');
    const lose = await pod('lose');
    expect(plugin('ADD', keep).status).toBe(0);
    const lost = plugin('ADD', lose);
    expect(lost.status).toBe(0);
    const missing = plugin('GC', {});
    expect(missing.json).toMatchObject({ code: CniCode.InvalidConfig });
    const gc = plugin('GC', {}, { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: keep.containerId, ifname: 'eth0' }] });
    expect(gc.status, gc.stderr).toBe(0);
    expect(states()).toEqual([`${keep.containerId}:eth0.json`]);
    expect(reservations()).toHaveLength(1);
    expect(reservations()).not.toContain(addressOf(lost.json).split('/')[0]);
    expect(plugin('DEL', keep).status).toBe(0);
    expect(plugin('DEL', lose).status).toBe(0);
    expect(reservations()).toEqual([]);
  });

  it('STATUS: 50 naming the subnet file while there is none, success once weftd wrote it', () => {
    expect(plugin('STATUS', {}).status).toBe(0);
    rmSync(join(dir, 'subnet.env'));
    const down = plugin('STATUS', {});
    expect(down.json).toMatchObject({ code: CniCode.StatusCannotAdd, msg: expect.stringContaining(join(dir, 'subnet.env')) });
    const add = plugin('ADD', { containerId: 'early', netns: '/run/netns/none' });
    expect(add.json).toMatchObject({ code: CniCode.TryAgainLater });
    subnetFile(4);
    expect(plugin('STATUS', {}, conf).status).toBe(0);
    expect(plugin('STATUS', { path: '/nonexistent' }).json).toMatchObject({ code: CniCode.StatusCannotAdd, msg: expect.stringContaining('"bridge" not found on CNI_PATH') });
  });

  it('bad input gets the spec code and a message naming what is wrong, and configures nothing', async () => {
    const p = await pod('bad');
    const expectCode = (what: string, a: PluginAnswer, code: number, text: string): void => {
      expect(a.status, what).not.toBe(0);
      expect(a.json, what).toMatchObject({ code, msg: expect.stringContaining(text) });
    };
    expectCode('no stdin', plugin('ADD', p, ''), CniCode.Decode, 'no network config on stdin');
    expectCode('bad JSON', plugin('ADD', p, '{"cniVersion": 1.0'), CniCode.Decode, 'not JSON');
    expectCode('version', plugin('ADD', p, { ...conf, cniVersion: '0.1.0' }), CniCode.IncompatibleVersion, 'cniVersion "0.1.0" is not supported');
    expectCode('no container id', plugin('ADD', { netns: p.netns }), CniCode.BadEnvironment, 'CNI_CONTAINERID is not set');
    expectCode('no netns', plugin('ADD', { containerId: p.containerId }), CniCode.BadEnvironment, 'CNI_NETNS is not set');
    expectCode('bad ifname', plugin('ADD', { ...p, ifname: 'a/b' }), CniCode.BadEnvironment, 'CNI_IFNAME "a/b"');
    expectCode('no CNI_PATH', plugin('ADD', { ...p, path: '' }), CniCode.BadEnvironment, 'CNI_PATH is not set');
    expectCode('no command', plugin('ADD', { ...p, env: { CNI_COMMAND: undefined } }), CniCode.BadEnvironment, 'CNI_COMMAND is not set');
    subnetFile(4, 'FLANNEL_MTU=huge\n');
    expectCode('bad subnet file', plugin('ADD', p), CniCode.InvalidConfig, 'FLANNEL_MTU must be an integer');
    subnetFile(4);
    expect(reservations()).toEqual([]);
    expect(states()).toEqual([]);
    expect(await veths()).toBe('');
  });
});
