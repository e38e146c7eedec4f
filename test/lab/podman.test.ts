// The podman harness on Debian's bridge + host-local + portmap (no weft plugin):
// addresses, pings, a published port, and no CNI state left after rm/destroy.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { installBridgeConflist } from './bridge_conflist.js';
import { Lab } from './lab.js';
import { listNamespaces, mountsUnder, pidAlive } from './netns.js';
import { cniResultFiles, hostLocalReservations } from './cni_results.js';
import { Podman, type ContainerInfo } from './podman.js';

const isRoot = process.getuid?.() === 0;
const SUBNET_RE = /^198\.19\.7\.\d+$/;

/** Fetches a URL with Node's http (no proxy variables honoured) and prints the body. */
const HTTP_GET = `require('node:http').get(process.argv[1], (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => { process.stdout.write(b); process.exit(r.statusCode === 200 ? 0 : 2); }); }).on('error', (e) => { process.stderr.write(e.message + '\\n'); process.exit(1); });`;

describe.skipIf(!isRoot)('podman harness (needs root: network namespaces, podman, runc)', () => {
  let lab: Lab | undefined;
  let pm: Podman | undefined;
  let network = '';
  let ipamDir = '';
  const started = new Map<string, ContainerInfo>();

  async function start(name: string, argv: string[], opts: { publish?: string[] } = {}): Promise<ContainerInfo> {
    await pm!.run(name, argv, opts);
    const info = await pm!.inspect(name);
    started.set(name, info);
    return info;
  }

  async function httpGet(ns: string, url: string): Promise<{ code: number; body: string }> {
    const r = await lab!.exec(ns, [process.execPath, '-e', HTTP_GET, url], { timeoutMs: 10_000, allowFail: true });
    return { code: r.code, body: r.stdout };
  }

  beforeAll(async () => {
    // Node 2 fetches node 1's published port over the underlay (PREROUTING); node 1 itself goes through OUTPUT.
    lab = await Lab.create({ nodes: 2, name: 'podman.test' });
    network = `weft-${lab.prefix}-n1`;
    const confDir = join(lab.dir, 'n1', 'cni');
    ipamDir = join(lab.dir, 'n1', 'ipam');
    await installBridgeConflist(confDir, network, '198.19.7.0/24', ipamDir);
    pm = await Podman.create(lab, 1, { network, confDir, pluginDirs: ['/usr/lib/cni'] });
  }, 60_000);

  // The Podman is a lab teardown hook: lab.destroy() removes its containers first.
  afterAll(() => lab?.destroy(), 60_000);

  it('gives each container its own address from host-local', async () => {
    const a = await start('a', ['sleep', '600']);
    const b = await start('b', ['sleep', '600']);
    expect(a.ip).toMatch(SUBNET_RE);
    expect(b.ip).toMatch(SUBNET_RE);
    expect(a.ip).not.toBe(b.ip);
    expect(await pm!.ip('a')).toBe(a.ip);
    // inspect's per-network address is the one on eth0 inside the container.
    const eth0 = await pm!.exec('a', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(eth0.stdout).toContain(`inet ${a.ip}/24`);
    const mtu = await pm!.exec('a', ['cat', '/sys/class/net/eth0/mtu']);
    expect(mtu.stdout.trim()).toBe('1464');
    expect(a.netns).toMatch(/^\/run\/netns\/netns-/);
    expect(await listNamespaces()).toContain(a.netns.slice('/run/netns/'.length));
    const ps = await pm!.ps();
    expect(ps).toContain(a.ip);
    expect(readdirSync(join(ipamDir, network))).toEqual(expect.arrayContaining([a.ip, b.ip]));
  }, 60_000);

  it('pings container to container and node to container', async () => {
    const bIp = started.get('b')!.ip;
    // podman 4.3's default capabilities include NET_RAW: busybox ping needs no --cap-add.
    const r = await pm!.exec('a', ['ping', '-c', '2', '-W', '1', '-w', '5', bIp], { allowFail: true, timeoutMs: 10_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await lab!.ping(lab!.nodeNs(1), started.get('a')!.ip)).toBe(true);
  }, 60_000);

  it('publishes a port through portmap', async () => {
    await start('web', ['sh', '-c', 'echo hello-from-web > /tmp/index.html && exec httpd -f -p 80 -h /tmp'], { publish: ['8080:80'] });
    const nodeIp = lab!.nodeIp(1);
    const url = `http://${nodeIp}:8080/`;
    // httpd listens a moment after `podman run -d` returns.
    let first = await httpGet(lab!.nodeNs(1), `http://${started.get('web')!.ip}/`);
    for (let k = 0; k < 50 && first.code !== 0; k++) {
      await new Promise((r) => setTimeout(r, 100));
      first = await httpGet(lab!.nodeNs(1), `http://${started.get('web')!.ip}/`);
    }
    expect(first).toEqual({ code: 0, body: 'hello-from-web\n' });
    // From the node itself: locally generated, DNAT in nat OUTPUT (portmap matches dst-type LOCAL there).
    expect(await httpGet(lab!.nodeNs(1), url)).toEqual({ code: 0, body: 'hello-from-web\n' });
    // From another node over the underlay: nat PREROUTING.
    expect(await httpGet(lab!.nodeNs(2), url)).toEqual({ code: 0, body: 'hello-from-web\n' });
    // Hairpin: a container on the same bridge through the node's published port (portmap masquerades it).
    const h = await pm!.exec('a', ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${nodeIp} 8080`], { allowFail: true, timeoutMs: 10_000 });
    expect(h.stdout).toContain('hello-from-web');
  }, 60_000);

  it('times `podman run --rm <rootfs> true` through bridge', async () => {
    const times: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t0 = process.hrtime.bigint();
      const r = await pm!.run(`t${k}`, ['true'], { detach: false });
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      expect(r.code).toBe(0);
    }
    const sorted = [...times].sort((x, y) => x - y);
    console.log(`podman run --rm --rootfs true (bridge + host-local + portmap): median ${sorted[2]!.toFixed(0)} ms of ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
    expect(cniResultFiles({ network }).length).toBe(started.size);
  }, 90_000);

  it('rm leaves no address, veth, netns or CNI cache behind', async () => {
    expect(cniResultFiles({ network }).length).toBe(3);
    for (const name of started.keys()) await pm!.rm(name);
    expect(hostLocalReservations(ipamDir, network)).toEqual([]);
    expect(await lab!.bridgePorts(1)).toEqual([]);
    const names = await listNamespaces();
    for (const c of started.values()) expect(names).not.toContain(c.netns.slice('/run/netns/'.length));
    expect(cniResultFiles({ network })).toEqual([]);
    expect(mountsUnder(pm!.dir)).toEqual([]);
    const nat = await lab!.exec(lab!.nodeNs(1), ['iptables-save', '-t', 'nat']);
    expect(nat.stdout).not.toMatch(/-j CNI-DN-/);
    for (const c of started.values()) {
      expect(pidAlive(c.pid)).toBe(false);
    }
    expect((await pm!.cli(['ps', '-aq'])).stdout.trim()).toBe('');
    started.clear();
  }, 60_000);

  it("destroy() leaves another node's containers on the same network; lab.destroy() removes the rest first", async () => {
    // Node 2: same network name, its own subnet, host-local dataDir and store.
    const confDir2 = join(lab!.dir, 'n2', 'cni');
    await installBridgeConflist(confDir2, network, '198.19.8.0/24', join(lab!.dir, 'n2', 'ipam'));
    const pm2 = await Podman.create(lab!, 2, { network, confDir: confDir2, pluginDirs: ['/usr/lib/cni'] });
    const mine = await start('last', ['sleep', '600']);
    await pm2.run('other', ['sleep', '600']);
    const other = await pm2.inspect('other');
    expect(other.ip).toMatch(/^198\.19\.8\.\d+$/);
    expect(cniResultFiles({ network }).length).toBe(2);

    await pm!.destroy();
    await pm!.destroy(); // idempotent
    expect(pidAlive(mine.pid)).toBe(false);
    expect(existsSync(mine.netns)).toBe(false);
    expect(existsSync(pm!.dir)).toBe(false);
    expect(cniResultFiles({ network })).toEqual([`${network}-${other.id}-eth0`]);
    expect(pidAlive(other.pid)).toBe(true);
    await expect(pm!.run('again', ['true'])).rejects.toThrow(/destroyed/);

    const labNs = lab!.allNamespaces;
    await lab!.destroy(); // runs pm2.destroy() before it stops processes or deletes namespaces
    expect(pidAlive(other.pid)).toBe(false);
    expect(pidAlive(other.conmonPid)).toBe(false);
    expect(existsSync(other.netns)).toBe(false);
    expect(existsSync(pm2.dir)).toBe(false);
    expect(cniResultFiles({ network })).toEqual([]);
    const left = await listNamespaces();
    for (const ns of labNs) expect(left).not.toContain(ns);
  }, 60_000);
});
