// weftd as a service on the lab: the systemd notify protocol, giving the
// subnet back on exit when asked, and node identity (a cloned machine, a
// node whose public IP changed).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX, WEFTD, WeftCluster, weftdNodeFlags } from '../lab/cluster.js';
import { rootSkipReason } from '../harness/privilege.js';


/** Prints every datagram received on the unix socket at argv[1], one line each, newlines as '|'. Exits after 60 s. */
const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
print("listening", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", "|"), flush=True)
`;

describe.skipIf(rootSkipReason())('weftd as a service (needs root: network namespaces, TUN, weftd)', () => {
  let c: WeftCluster;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-notify-'));
    c = await WeftCluster.create({ nodes: 3, podsPerNode: 0, name: 'service', startNodes: false });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const lease = async (subnet: string): Promise<string> => c.lab.etcdctl(['get', '--print-value-only', `/weft/network/subnets/${subnet.replace('/', '-')}`]);

  it('tells systemd READY=1 once forwarding, then WATCHDOG=1 keepalives, then STOPPING=1', async () => {
    const socket = join(dir, 'notify.sock');
    const listener = c.lab.spawn(c.lab.etcdNs, ['python3', '-c', LISTENER, socket]);
    await listener.waitForLog(/^listening$/, 10_000);
    await c.startNode(1, 1, [], { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' });
    // WATCHDOG_USEC 400 ms: a keepalive every 200 ms.
    const deadline = Date.now() + 5000;
    while ((listener.log().match(/WATCHDOG=1/g) ?? []).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect((await c.stopNode(1, 'SIGTERM')).code).toBe(0);
    await listener.waitForLog(/STOPPING=1/, 5000);
    const lines = listener.log().split('\n').filter((l) => l !== '' && l !== 'listening' && !l.startsWith('#'));
    expect(lines[0]).toMatch(new RegExp(`^READY=1\\|STATUS=forwarding for ${c.nodes.get(1)!.subnet!.replace(/\./g, '\\.')}, 0 peers\\|MAINPID=\\d+$`));
    const watchdogs = lines.filter((l) => l === 'WATCHDOG=1').length;
    expect(watchdogs).toBeGreaterThanOrEqual(2);
    expect(lines.at(-1)).toBe('STOPPING=1|STATUS=stopping');
    expect(lines.slice(1, -1).every((l) => l === 'WATCHDOG=1')).toBe(true);
    listener.kill();
  }, 60_000);

  it.each(['native', 'js'])('says not ready and withholds the watchdog once its TUN is gone (%s engine)', async (engine) => {
    const socket = join(dir, `notify-${engine}.sock`);
    const listener = c.lab.spawn(c.lab.etcdNs, ['python3', '-c', LISTENER, socket]);
    await listener.waitForLog(/^listening$/, 10_000);
    const s = await c.startNode(2, 0, ['--engine', engine], { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' });
    expect((await c.http(2, '/readyz')).code).toBe(200);
    await c.lab.exec(c.lab.nodeNs(2), ['ip', 'link', 'del', 'weft0']);
    const deadline = Date.now() + 5000;
    while ((await c.http(2, '/readyz')).code !== 503 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const ready = await c.http(2, '/readyz');
    expect(ready.code).toBe(503);
    expect(ready.body).toContain('the dataplane stopped forwarding');
    await s.weftd!.waitForLog(/"event":"watchdog_withheld"/, 5000);
    if (engine === 'native') {
      // Dead workers hold no route table: the ones replaced from now on are freed, not kept forever.
      const used = new Set([...c.nodes.values()].map((n) => n.subnet));
      const ghosts = Array.from({ length: 250 }, (_, k) => `198.19.${k + 2}.0/24`).filter((sn) => !used.has(sn)).slice(0, 5);
      const key = (sn: string): string => `${PREFIX}/network/subnets/${sn.replace('/', '-')}`;
      for (const [k, sn] of ghosts.entries()) {
        await c.lab.etcdctl(['put', key(sn), JSON.stringify({ nodeName: `ghost${k}`, publicIp: `198.18.0.${100 + k}`, port: 4790, vni: 1, version: 'hand' })]);
      }
      const status = async () => JSON.parse((await c.http(2, '/status')).body) as { engine: { details: { retiredTables: number } }; peers: { subnet: string }[] };
      const deadline2 = Date.now() + 5000;
      for (;;) {
        const st = await status();
        if (ghosts.every((g) => st.peers.some((p) => p.subnet === g))) break;
        if (Date.now() > deadline2) throw new Error('the ghost leases never reached node 2');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await status()).engine.details.retiredTables).toBeLessThanOrEqual(1);
      for (const sn of ghosts) await c.lab.etcdctl(['del', key(sn)]);
    }
    const keepalives = (listener.log().match(/WATCHDOG=1/g) ?? []).length;
    await new Promise((r) => setTimeout(r, 1000));
    expect((listener.log().match(/WATCHDOG=1/g) ?? []).length).toBe(keepalives);
    expect((await c.stopNode(2, 'SIGTERM')).code).toBe(0);
    listener.kill();
  }, 60_000);

  it('keeps the lease on SIGTERM, and gives it back with --release-on-exit', async () => {
    const kept = c.nodes.get(1)!.subnet!;
    expect(await lease(kept)).toContain('"nodeName":"node1"');
    const s = await c.startNode(2, 0, ['--release-on-exit']);
    const subnet = s.subnet!;
    expect(await lease(subnet)).toContain('"nodeName":"node2"');
    expect((await c.stopNode(2, 'SIGTERM')).code).toBe(0);
    expect(await lease(subnet)).toBe('');
    expect(existsSync(join(c.nodeDir(2), 'subnet.env'))).toBe(false);
  }, 60_000);

  it('runs from its bin with CAP_NET_ADMIN as its only capability and /proc/sys read-only, as the unit file grants', async () => {
    const dir2 = join(dir, 'capped');
    const flags = ['--etcd-endpoints', c.lab.etcdEndpoint, '--node-name', 'capped', '--iface', 'eth0', '--subnet-file', join(dir2, 'subnet.env'), '--state-dir', join(dir2, 'state'), '--ip-masq'];
    // ProtectKernelTunables=yes as systemd does it: /proc/sys bind-mounted read-only in a mount namespace of weftd's own.
    const readOnlySysctl = 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"';
    const setpriv = ['setpriv', '--inh-caps', '-all,+net_admin', '--ambient-caps', '-all,+net_admin', '--bounding-set', '-all,+net_admin', '--no-new-privs'];
    const capped = c.lab.spawn(c.lab.nodeNs(2), ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', readOnlySysctl, 'sh', ...setpriv, WEFTD, ...flags]);
    const ready = JSON.parse(await capped.waitForLog(/"event":"ready"/, 20_000)) as { subnet: string; udpGso: boolean };
    // Started by its bin, as the unit starts it: Node runs with the bin's flags.
    const argv = readFileSync(`/proc/${capped.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(0, 1 + weftdNodeFlags().length)).toEqual(['node', ...weftdNodeFlags()]);
    expect(weftdNodeFlags()).toContain('--jitless');
    expect(ready.udpGso).toBe(true);
    const mounts = readFileSync(`/proc/${capped.pid}/mountinfo`, 'utf8').split('\n').filter((l) => l.split(' ')[4] === '/proc/sys').at(-1);
    expect(mounts?.split(' ')[5]).toMatch(/^ro\b/);
    // The ICMP errors weft writes into weft0 come from weft0's own address: accept_local, set without /proc/sys.
    expect((await c.lab.exec(c.lab.nodeNs(2), ['cat', '/proc/sys/net/ipv4/conf/weft0/accept_local'])).stdout.trim()).toBe('1');
    const [pod] = await c.lab.addPods(2, 1, { network: ready.subnet.split('/')[0]!, prefixLen: 24 });
    const node1 = await c.startNode(1, 1);
    expect(await c.lab.ping(pod!, c.lab.podIp(node1.pods[0]!), { count: 2 })).toBe(true);
    capped.kill('SIGTERM');
    expect((await capped.exited).code).toBe(0);
    await c.stopNode(1);
    expect(capped.log()).not.toMatch(/"level":(40|50|60)/);
  }, 60_000);

  it("stops the older of two daemons with one node name, naming the other one's public IP", async () => {
    const n1 = await c.startNode(1, 0);
    const subnet = n1.subnet!;
    const old = n1.weftd!;
    // A clone of node 1 (same node name) comes up on node 3's address.
    const clone = await c.startNode(3, 0, ['--node-name', 'node1']);
    expect(clone.subnet).toBe(subnet);
    const exit = await old.exited;
    // 3, which the unit's RestartPreventExitStatus keeps systemd from restarting: no tug of war over the name.
    expect(exit.code).toBe(3);
    expect(old.log()).toMatch(/another weftd took over node name node1 and subnet .* from 198\.18\.0\.3/);
    expect(old.log()).toContain('give one of the two machines another --node-name');
    expect(await lease(subnet)).toContain('"publicIp":"198.18.0.3"');
    expect((await c.lab.exec(c.lab.nodeNs(1), ['ip', 'link', 'show', 'weft0'], { allowFail: true })).code).not.toBe(0);
  }, 60_000);

  it('lets a node whose public IP changed keep its subnet and updates its lease', async () => {
    // The clone (node name node1 at 198.18.0.3) goes away; node1 comes back at 198.18.0.1.
    const subnet = c.nodes.get(3)!.subnet!;
    expect((await c.stopNode(3, 'SIGTERM')).code).toBe(0);
    const back = await c.startNode(1, 0);
    expect(back.subnet).toBe(subnet);
    expect(await lease(subnet)).toContain('"publicIp":"198.18.0.1"');
  }, 60_000);
});
