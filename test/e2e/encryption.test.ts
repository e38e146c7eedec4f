// An encrypted weft cluster on the lab (`weftctl init --encryption
// wireguard`): leases carry keys, TUN and pods run at underlay - 60, every
// pod pings every other, 20 MiB over TCP arrive intact both ways, a capture
// on the underlay holds no inner packet in the clear and tshark decodes it
// as WireGuard (handshake initiation, response, transport data); hostile
// datagrams on the WireGuard port (a replayed transport message, one with a
// bit flipped, initiations with a bad mac1 or from an address no node has)
// are refused, counted, and reach no pod.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { sleep, until } from '../harness/until.js';
import { type LabProcess } from '../lab/lab.js';
import { WeftCluster } from '../lab/cluster.js';
import { missingCommand } from '../lab/overlay_node.js';
import { wgPublicKey } from '../lab/wireguard_node.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const WG_PORT = 51820;
/** "weft" repeated: the payload of the pings whose bytes must not cross the underlay in the clear. */
const PATTERN = '77656674';
const skip = rootSkipReason() || missingCommand([{ command: 'tshark', pkg: 'tshark' }, { command: 'tcpdump', pkg: 'tcpdump' }]);

/** Every node native (the product), every node js (the reference), and both in one cluster (node 2 js). */
const SETUPS: [string, (node: number) => string][] = [
  ['native', () => 'native'],
  ['js', () => 'js'],
  ['mixed', (node) => (node === 2 ? 'js' : 'native')],
];

/** A capture on node i's underlay (tcpdump, UDP only) while `during` runs; the pcap file. */
async function capture(c: WeftCluster, i: number, name: string, during: () => Promise<void>): Promise<string> {
  const file = join(c.lab.dir, `${name}.pcap`);
  // --immediate-mode: each packet is written as it arrives, not when libpcap's buffer fills or times out.
  const dump: LabProcess = c.lab.spawn(c.lab.nodeNs(i), ['tcpdump', '-i', 'eth0', '-n', '--immediate-mode', '-U', '-s', '0', '-w', file, 'udp']);
  await dump.waitForLog(/listening on eth0/, 10_000);
  try {
    await during();
  } finally {
    await sleep(200);
    dump.kill('SIGINT');
    await dump.exited;
  }
  return file;
}

/** tshark's fields of each UDP datagram in `file`, decoding `port` as WireGuard. */
async function tsharkFields(c: WeftCluster, file: string, filter: string, fields: string[]): Promise<string[][]> {
  const r = await c.lab.exec(c.lab.nodeNs(1), ['tshark', '-r', file, '-d', `udp.port==${WG_PORT},wg`, '-Y', filter, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { timeoutMs: 30_000 });
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

describe.skipIf(skip).each(SETUPS)(`an encrypted cluster, %s engines${skip ? ` (skipped: ${skip})` : ''}`, (name, engine) => {
  let c: WeftCluster;
  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 3, podsPerNode: 1, name: `encrypted-${name}`, engine, initFlags: ['--encryption', 'wireguard'] });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes every node\'s key and port in its lease (weftctl leases shows them) and runs TUN and pods at 1440', async () => {
    const leases = (JSON.parse(await c.weftctl(['leases', '--json'])) as { leases: { node: string; wireguardPublicKey: string; wireguardPort: number }[] }).leases;
    for (let i = 1; i <= 3; i++) {
      const status = JSON.parse((await c.http(i, '/status')).body) as { encryption: { mode: string; published: boolean; publicKey: string } };
      expect(status.encryption).toMatchObject({ mode: 'wireguard', published: true });
      expect(leases.find((l) => l.node === `node${i}`)).toMatchObject({ wireguardPublicKey: status.encryption.publicKey, wireguardPort: WG_PORT });
      expect(c.subnetEnv(i).FLANNEL_MTU).toBe('1440');
      expect((await c.lab.exec(c.lab.nodeNs(i), ['cat', '/sys/class/net/weft0/mtu'])).stdout.trim()).toBe('1440');
      // wg pubkey reads the key file as weftd wrote it.
      const key = readFileSync(join(c.nodeDir(i), 'state', 'wireguard.key'), 'utf8');
      expect(await wgPublicKey(c.lab, c.lab.nodeNs(i), key)).toBe(status.encryption.publicKey);
    }
    const table = await c.weftctl(['leases']);
    expect(table).toMatch(/WIREGUARD KEY/);
    for (const l of leases) expect(table).toContain(`${l.wireguardPublicKey} :${WG_PORT}`);
  });

  it('lets every pod ping every other, full-size packets included, in WireGuard only: tshark decodes initiation, response and data, and no inner byte is in the clear', async () => {
    const file = await capture(c, 2, `matrix-${name}`, async () => {
      expect(await c.pingPairs([1, 2, 3])).toEqual([]);
      for (const [a, b] of [[1, 2], [2, 1]] as const) {
        const r = await c.lab.exec(c.nodes.get(a)!.pods[0]!, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-s', String(1440 - 28), '-p', PATTERN, c.lab.podIp(c.nodes.get(b)!.pods[0]!)], { allowFail: true });
        expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
      }
    });
    const wg = await tsharkFields(c, file, `udp.port==${WG_PORT}`, ['wg.type', 'udp.length']);
    const types = new Set(wg.map(([t]) => t));
    expect([...types].sort()).toEqual(expect.arrayContaining(['1', '2', '4']));
    // Full-size pings: 1440-byte packets, 16 + 1440 + 16 bytes of WireGuard, 8 of UDP.
    expect(wg.some(([t, len]) => t === '4' && len === String(8 + 16 + 1440 + 16))).toBe(true);
    expect(await tsharkFields(c, file, 'udp.port==4790', ['udp.length'])).toEqual([]);
    const bytes = readFileSync(file);
    expect(bytes.includes(Buffer.from(PATTERN.repeat(4), 'hex'))).toBe(false);
    // No inner IPv4 header: the two pods' addresses never appear side by side.
    const [p1, p2] = [1, 2].map((i) => Buffer.from(c.lab.podIp(c.nodes.get(i)!.pods[0]!).split('.').map(Number)));
    expect(bytes.includes(Buffer.concat([p1!, p2!])) || bytes.includes(Buffer.concat([p2!, p1!]))).toBe(false);
  }, 60_000);

  it('moves 20 MiB over TCP between pods on different nodes, intact, both ways', async () => {
    const [a, b] = [c.nodes.get(1)!.pods[0]!, c.nodes.get(3)!.pods[0]!];
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const r = await c.transfer(from, to, 20 * 1024 * 1024);
      expect(r.sent).toMatch(/^20971520 [0-9a-f]{64}$/);
      expect(r.received).toBe(r.sent);
    }
  }, 180_000);

  // The native engine's path-MTU handling with WireGuard's 60 bytes (the js engine has none: see docs/mtu.md).
  if (engine(1) === 'native') {
    it('finishes 20 MiB over a path narrower than the underlay interface (route MTU 1400), and tells a DF sender the path MTU less 60', async () => {
      const n1 = c.lab.nodeNs(1);
      const [a, b] = [c.nodes.get(1)!.pods[0]!, c.nodes.get(2)!.pods[0]!];
      await c.lab.exec(n1, ['ip', 'route', 'add', `${c.lab.nodeIp(2)}/32`, 'dev', 'eth0', 'mtu', '1400']);
      try {
        const r = await c.transfer(a, b, 20 * 1024 * 1024);
        expect(r.sent).toMatch(/^20971520 [0-9a-f]{64}$/);
        expect(r.received).toBe(r.sent);
        const big = await c.lab.exec(a, ['ping', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', '1400', c.lab.podIp(b)], { allowFail: true });
        expect(`${big.stdout}${big.stderr}`).toMatch(/mtu = 1340|mtu=1340/);
        expect((await c.counters(1)).inside_drop_too_big).toBeGreaterThan(0);
        expect(await c.lab.ping(a, c.lab.podIp(b))).toBe(true);
      } finally {
        await c.lab.exec(n1, ['ip', 'route', 'del', `${c.lab.nodeIp(2)}/32`], { allowFail: true });
      }
    }, 120_000);
  }

  it('refuses a replayed transport message, one with a bit flipped, initiations with a bad mac1 or from an address no node has; counted, and nothing reaches a pod', async () => {
    const [p1, p2] = [c.nodes.get(1)!.pods[0]!, c.nodes.get(2)!.pods[0]!];
    // A fresh handshake from node 1 to node 2 (a restart of node 1 forgets its sessions), captured.
    await c.stopNode(1);
    await c.startNode(1);
    const file = await capture(c, 2, `hostile-${name}`, async () => {
      expect(await c.lab.ping(p1, c.lab.podIp(p2), { count: 2, timeoutS: 5 })).toBe(true);
    });
    const fromNode1 = await tsharkFields(c, file, `udp.dstport==${WG_PORT} && ip.src==${c.lab.nodeIp(1)}`, ['wg.type', 'udp.payload']);
    const initiation = fromNode1.find(([t]) => t === '1')?.[1];
    if (!initiation) throw new Error(`no initiation from node 1 captured: ${JSON.stringify(fromNode1)}`);
    const data = fromNode1.filter(([t]) => t === '4').at(-1)![1]!;
    const flip = (hex: string, at: number): string => {
      const b = Buffer.from(hex, 'hex');
      b[at] = b[at]! ^ 0x01;
      return b.toString('hex');
    };
    const send = (ns: string, ...payloads: string[]) => c.lab.exec(ns, [process.execPath, join(FIXTURES, 'udp_send.mjs'), c.lab.nodeIp(2), String(WG_PORT), ...payloads]);
    const before = await c.counters(2);
    await send(c.lab.nodeNs(1), data, data); // replayed (its counter was taken already)
    await send(c.lab.nodeNs(1), flip(data, 40)); // a bit of the ciphertext flipped
    await send(c.lab.nodeNs(1), flip(initiation, 120)); // a bit of mac1 flipped
    await send(c.lab.etcdNs, initiation); // from an address no lease names
    await send(c.lab.nodeNs(1), Buffer.alloc(40, 4).toString('hex')); // type 4, reserved bytes set
    const after = await until('the refusals counted', async () => {
      const now = await c.counters(2);
      return now.outside_drop_wg_mac1! > before.outside_drop_wg_mac1! && now.outside_drop_wg_malformed! > before.outside_drop_wg_malformed! ? now : undefined;
    }, 10_000, 200);
    const delta = (k: string): number => after[k]! - before[k]!;
    expect({ replay: delta('outside_drop_wg_replay'), auth: delta('outside_drop_wg_auth'), mac1: delta('outside_drop_wg_mac1'), stranger: delta('outside_drop_unknown_sender'), malformed: delta('outside_drop_wg_malformed') }).toEqual({
      replay: 2,
      auth: 1,
      mac1: 1,
      stranger: 1,
      malformed: 1,
    });
    expect(delta('outside_packets')).toBe(0);
    expect(await c.lab.ping(p1, c.lab.podIp(p2), { count: 1, timeoutS: 5 })).toBe(true);

    // A flood of that initiation (valid mac1, a node's address) for 3 s: the node counts it as under load and
    // answers no more than a source's share, while pods keep pinging through it.
    const flood = c.lab.exec(c.lab.nodeNs(1), [process.execPath, '--import', 'tsx', join(FIXTURES, 'udp_spray.ts'), c.lab.nodeIp(2), String(WG_PORT), 'repeat', '3s', initiation], { timeoutMs: 30_000 });
    // 40 pings in 2 s of the 3 s flood. How many the js engine answers is a rate that varies from run to run (5 to 14
    // of 20 in four full runs, 3 of 20 once, 8 of 40): it is printed below and recorded in docs/encryption.md; what is held here
    // is that its pods are not cut off (at 3 of 20, none of 40 answered happens about once in 700 runs).
    const during = await c.lab.exec(c.nodes.get(3)!.pods[0]!, ['ping', '-n', '-q', '-c', '40', '-i', '0.05', '-W', '1', c.lab.podIp(p2)], { allowFail: true, timeoutMs: 20_000 });
    const floodSent = Number((await flood).stdout.trim());
    const flooded = await c.counters(2, 1000);
    const refused = flooded.outside_drop_wg_cookie! - after.outside_drop_wg_cookie! + (flooded.outside_drop_wg_replay! - after.outside_drop_wg_replay!) + (flooded.outside_drop_wg_queue_full! - after.outside_drop_wg_queue_full!);
    const received = /(\d+) received/.exec(during.stdout)?.[1];
    process.stdout.write(`[encryption ${name}] handshake flood: ${floodSent} initiations sent in 3 s, ${refused} refused by node 2 (the rest dropped by its kernel); pings through node 2 meanwhile: ${received}/40 answered, ${/rtt [^=]+= ([\d./]+)/.exec(during.stdout)?.[1] ?? '-'} ms\n`);
    expect(floodSent).toBeGreaterThan(1000);
    expect(flooded.outside_drop_wg_cookie! - after.outside_drop_wg_cookie!).toBeGreaterThan(0);
    // The native engine checks mac1 in its workers at line rate and passes the sessions a bounded queue; the js engine
    // checks every datagram on its one thread, and the flood fills the socket its pings share: some get through.
    expect(Number(received)).toBeGreaterThanOrEqual(engine(2) === 'native' ? 36 : 1);
    expect(await c.lab.ping(p1, c.lab.podIp(p2), { count: 2, timeoutS: 5 })).toBe(true);
  }, 90_000);

  it('rotates node 2\'s key with weftctl rotate-key under a ping every 50 ms: the key file and the lease carry the new key, no more than a ping lost, and a new handshake uses it', async () => {
    const [p1, p2] = [c.nodes.get(1)!.pods[0]!, c.nodes.get(2)!.pods[0]!];
    const statusOf = async (i: number) => (JSON.parse((await c.http(i, '/status')).body) as { encryption: { publicKey: string; peers: { key: string; state: string }[] } }).encryption;
    const old = (await statusOf(2)).publicKey;
    const stream = c.lab.exec(p1, ['ping', '-n', '-q', '-c', '100', '-i', '0.05', '-W', '1', c.lab.podIp(p2)], { allowFail: true, timeoutMs: 30_000 });
    await sleep(1000);
    const out = await c.weftctl(['rotate-key', '--state-dir', join(c.nodeDir(2), 'state')]);
    const pings = await stream;
    const now = (await statusOf(2)).publicKey;
    expect(now).not.toBe(old);
    expect(out).toBe(`node node2: WireGuard key rotated, ${old} -> ${now}\n`);
    const key = readFileSync(join(c.nodeDir(2), 'state', 'wireguard.key'), 'utf8');
    expect(await wgPublicKey(c.lab, c.lab.nodeNs(2), key)).toBe(now);
    const leases = (JSON.parse(await c.weftctl(['leases', '--json'])) as { leases: { node: string; wireguardPublicKey: string }[] }).leases;
    expect(leases.find((l) => l.node === 'node2')!.wireguardPublicKey).toBe(now);
    const received = Number(/(\d+) received/.exec(pings.stdout)?.[1]);
    process.stdout.write(`[encryption ${name}] key rotation under a ping every 50 ms: ${received}/100 answered\n`);
    expect(received).toBeGreaterThanOrEqual(99);
    // Node 1 restarted forgets its sessions: its next handshake is made for node 2's new key.
    await until('node 1 to see node 2\'s new key', async () => (await statusOf(1)).peers.some((x) => x.key === now) || undefined, 10_000, 200);
    await c.stopNode(1);
    await c.startNode(1);
    expect(await c.lab.ping(p1, c.lab.podIp(p2), { count: 2, timeoutS: 5 })).toBe(true);
    expect((await statusOf(1)).peers.find((x) => x.key === now)).toMatchObject({ state: 'up' });
  }, 90_000);
});
