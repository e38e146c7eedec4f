// Encryption in whole weftd control planes in one process (the js engine
// over in-memory TUNs and underlay, the in-memory registry, a manual clock):
// keys in the leases, pods pinging across in WireGuard only, the config
// moved off -> wireguard -> wireguard-only -> off on the running cluster,
// sessions rekeyed every two minutes under traffic, a key rotated with no
// ping lost, and an unsafe key file refused.

import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ETCD_PROBE_MS, type EncryptionMode } from '../../src/constants.js';
import { parseCidr } from '../../src/net/ipv4.js';
import { DEFAULT_WG_PORT, REJECT_AFTER_TIME_MS, REKEY_AFTER_TIME_MS } from '../../src/wireguard/constants.js';
import { formatKey, generateKeyPair, keyPair, parseKey } from '../../src/wireguard/keys.js';
import { ClusterNode, MemoryCluster, ping, pinged, podIp } from '../harness/memory_cluster.js';
import { gpe, icmpEcho } from '../harness/packets.js';
import { config } from '../harness/registry_fixture.js';
import { until } from '../harness/until.js';

let cluster: MemoryCluster;
beforeEach(() => {
  cluster = new MemoryCluster();
});
afterEach(async () => {
  await cluster.close();
});

async function setEncryption(mode: EncryptionMode): Promise<void> {
  await cluster.admin.putConfig({ ...config(), encryption: mode }, true);
}

/** Datagrams on the in-memory underlay since mark `from`, by destination port. */
function sentSince(from: number, port: number): Buffer[] {
  return cluster.net.sent.slice(from).filter((d) => d.port === port).map((d) => d.data);
}

/** What a ping (as ping() sends it) shows on the underlay in the clear: its "weft" marker, and its pods' addresses. */
const MARKER = Buffer.from('weft');
const addressBytes = (x: ClusterNode): Buffer => Buffer.from(podIp(x).split('.').map(Number));

const allApplied = (nodes: ClusterNode[], mode: EncryptionMode): boolean => nodes.every((x) => x.status().encryption?.mode === mode && x.status().encryption?.published === (mode !== 'off'));

describe('encryption in a weft cluster in one process (js engine, manual clock)', () => {
  it('publishes each node\'s key and port in its lease, runs the TUN and pods at underlay - 60, and carries pod traffic in WireGuard only', async () => {
    const nodes = await cluster.startAll(3, { encryption: 'wireguard' });
    const leases = (await cluster.admin.listLeases()).records;
    for (const x of nodes) {
      const enc = x.status().encryption!;
      const lease = leases.find((r) => r.lease.nodeName === x.name)!.lease;
      expect(lease).toMatchObject({ wireguardPublicKey: enc.publicKey, wireguardPort: DEFAULT_WG_PORT });
      // The key file holds the private key of the published public key, readable by its owner only.
      const file = join(x.stateDir, 'wireguard.key');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(formatKey(keyPair(parseKey(readFileSync(file, 'utf8').trim())!).publicKey)).toBe(enc.publicKey);
      expect(x.host.tunConfig?.mtu).toBe(1440);
      expect(readFileSync(x.options().subnetFile, 'utf8')).toContain('FLANNEL_MTU=1440');
    }
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const mark = cluster.net.sent.length;
    for (const [x, y] of [[a, b], [b, a], [a, c], [c, b]] as const) await ping(x, y, { size: 40 });
    expect(sentSince(mark, 4790)).toEqual([]);
    const wg = sentSince(mark, DEFAULT_WG_PORT);
    expect(wg.filter((d) => d[0] === 1 && d.length === 148).length).toBeGreaterThanOrEqual(3);
    expect(wg.filter((d) => d[0] === 2 && d.length === 92).length).toBeGreaterThanOrEqual(3);
    // 68-byte pings pad to 80: 16 + 80 + 16 = 112 bytes on the wire, and no inner byte in the clear.
    expect(wg.filter((d) => d[0] === 4 && d.length === 112).length).toBeGreaterThanOrEqual(4);
    expect(wg.some((d) => d.includes(MARKER) || d.includes(addressBytes(a)))).toBe(false);
    for (const x of nodes) {
      expect(x.status().encryption!.peers.map((p) => p.state).sort()).not.toContain('failing');
      expect(x.status().counters!.wg_handshakes_completed).toBeGreaterThan(0);
    }
  });

  it('follows the config live, off -> wireguard -> wireguard-only -> off, while pods ping every 100 ms: none lost', async () => {
    const [a, b] = (await cluster.startAll(2, { encryption: 'off' })) as [ClusterNode, ClusterNode];
    expect(a.host.tunConfig?.mtu).toBe(1464);
    // A node that never encrypted has no key: it is made when encryption is turned on.
    expect(existsSync(join(a.stateDir, 'wireguard.key'))).toBe(false);
    expect(a.status().encryption?.publicKey).toBe('');
    let lost = 0;
    const pingFor = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t += 100) {
        lost += Number(!(await pinged(a, b, { waitMs: 300 }))) + Number(!(await pinged(b, a, { waitMs: 300 })));
        await cluster.elapse(100);
      }
    };
    const offMark = cluster.net.sent.length;
    await pingFor(1000);
    expect(lost).toBe(0);
    // Unencrypted, the pings go out on 4790 with their marker and addresses in the clear: what the WireGuard checks find absent.
    expect(sentSince(offMark, 4790).some((d) => d.includes(MARKER) && d.includes(addressBytes(a)) && d.includes(addressBytes(b)))).toBe(true);
    const mark = cluster.net.sent.length;
    await setEncryption('wireguard');
    await pingFor(ETCD_PROBE_MS + 1000);
    expect(allApplied([a, b], 'wireguard')).toBe(true);
    expect(statSync(join(a.stateDir, 'wireguard.key')).mode & 0o777).toBe(0o600);
    expect(a.events('wireguard_key')).toMatchObject([{ created: true, public_key: a.status().encryption!.publicKey }]);
    expect(a.host.tunConfig?.mtu).toBe(1440);
    expect(readFileSync(a.options().subnetFile, 'utf8')).toContain('FLANNEL_MTU=1440');
    const plainAfter = cluster.net.sent.length;
    await pingFor(1000);
    expect(sentSince(plainAfter, 4790)).toEqual([]);
    expect(sentSince(mark, DEFAULT_WG_PORT).some((d) => d[0] === 4)).toBe(true);

    await setEncryption('wireguard-only');
    await pingFor(ETCD_PROBE_MS + 1000);
    expect(allApplied([a, b], 'wireguard-only')).toBe(true);
    // VXLAN-GPE from b, well formed, is now refused and counted; nothing of it reaches a's pods.
    const before = a.status().counters!.outside_drop_plaintext;
    const written = a.tun.written.length;
    cluster.net.inject(b.ip, a.ip, 4790, gpe(icmpEcho(podIp(b), podIp(a), 8)));
    await until('the plaintext drop', () => a.status().counters!.outside_drop_plaintext > before, 2000, 2);
    expect(a.tun.written.length).toBe(written);
    // A node whose lease has no key cannot be reached at all: answered with net-unreachable, counted.
    await cluster.admin.createLease(parseCidr('198.19.250.0/24'), { nodeName: 'old', publicIp: '198.18.9.9', port: 4790, vni: 1, version: 'hand', engine: '', instance: '' }, 600);
    await until('the keyless lease routed', () => a.status().peers.some((p) => p.node === 'old'), 2000, 2);
    const drops = a.status().counters!.inside_drop_plaintext;
    a.tun.inject([icmpEcho(podIp(a), '198.19.250.2', 8)]);
    await until('the refusal', () => a.status().counters!.inside_drop_plaintext === drops + 1, 2000, 2);
    expect(a.tun.written.at(-1)![20]).toBe(3); // ICMP destination unreachable back to the pod

    await setEncryption('off');
    await pingFor(ETCD_PROBE_MS + 1000);
    expect(allApplied([a, b], 'off')).toBe(true);
    expect(a.host.tunConfig?.mtu).toBe(1464);
    expect((await cluster.admin.listLeases()).records.find((r) => r.lease.nodeName === 'n1')!.lease.wireguardPublicKey).toBe('');
    // Started together, the two nodes read the config at the same simulated instants: neither ever runs a mode
    // the other has left, and a packet sent while a handshake is under way waits for it. Not one of the pings is lost.
    expect(lost).toBe(0);
  }, 60_000);

  it('rekeys every two minutes while traffic flows and never sends on a session older than 180 s: no ping lost in 7 minutes', async () => {
    const [a, b] = (await cluster.startAll(2, { encryption: 'wireguard' })) as [ClusterNode, ClusterNode];
    let lost = 0;
    for (let t = 0; t < 7 * 60_000; t += 5000) {
      lost += Number(!(await pinged(a, b))) + Number(!(await pinged(b, a)));
      await cluster.elapse(5000);
    }
    expect(lost).toBe(0);
    // One session from the start, then one per REKEY_AFTER_TIME (initiated by whichever node's session aged first).
    const handshakes = a.status().counters!.wg_handshakes_completed;
    expect(handshakes).toBeGreaterThanOrEqual(Math.floor((7 * 60_000) / REKEY_AFTER_TIME_MS));
    expect(handshakes).toBeLessThanOrEqual(Math.ceil((7 * 60_000) / REKEY_AFTER_TIME_MS) * 2 + 1);
    for (const x of [a, b]) expect(x.status().encryption!.peers[0]!.lastHandshakeAgoS!).toBeLessThan(REJECT_AFTER_TIME_MS / 1000);
  }, 60_000);

  it('rotates a node\'s key without losing a ping: the file and the lease carry the new key, sessions go on, new handshakes use it', async () => {
    const [a, b] = (await cluster.startAll(2, { encryption: 'wireguard' })) as [ClusterNode, ClusterNode];
    await ping(a, b);
    const old = a.status().encryption!.publicKey;
    await a.daemon!.rotateKey();
    const now = a.status().encryption!.publicKey;
    expect(now).not.toBe(old);
    expect(formatKey(keyPair(parseKey(readFileSync(join(a.stateDir, 'wireguard.key'), 'utf8').trim())!).publicKey)).toBe(now);
    expect((await cluster.admin.listLeases()).records.find((r) => r.lease.nodeName === 'n1')!.lease.wireguardPublicKey).toBe(now);
    await until('b to see a\'s new key', () => b.status().encryption!.peers[0]!.key === now, 2000, 2);
    let lost = 0;
    for (let t = 0; t < REJECT_AFTER_TIME_MS + 60_000; t += 5000) {
      lost += Number(!(await pinged(a, b))) + Number(!(await pinged(b, a)));
      await cluster.elapse(5000);
    }
    expect(lost).toBe(0);
    expect(b.status().encryption!.peers[0]).toMatchObject({ key: now, state: 'up' });
    expect(b.status().encryption!.peers[0]!.lastHandshakeAgoS!).toBeLessThan(REJECT_AFTER_TIME_MS / 1000);
    expect(a.events('wireguard_key_rotated')).toHaveLength(1);
  }, 60_000);

  it('refuses to start with a key file group or others can read, naming the path', async () => {
    await cluster.init();
    const x = cluster.add('n1', 0);
    mkdirSync(x.stateDir, { recursive: true });
    const file = join(x.stateDir, 'wireguard.key');
    writeFileSync(file, `${formatKey(generateKeyPair().privateKey)}\n`);
    chmodSync(file, 0o644);
    await x.start();
    expect(x.ended).toMatchObject({ code: 'WEFT_KEY_FILE' });
    expect((x.ended as Error).message).toContain(`WireGuard key file ${file}: has mode 0644`);
    expect((await cluster.admin.listLeases()).records).toEqual([]);
  });

  it('refuses --engine kernel while the cluster encrypts; a kernel node running when encryption is turned on publishes no key, says so once, and its peers still reach it', async () => {
    await cluster.init();
    await setEncryption('wireguard');
    const refused = cluster.add('k0', 9, { engine: 'kernel' });
    await refused.start();
    expect(refused.ended).toMatchObject({ code: 'WEFT_ENGINE_REFUSED' });
    expect((refused.ended as Error).message).toMatch(/^--engine kernel cannot encrypt, and the network config asks for encryption wireguard: run --engine native \(or js\)/);
    expect((await cluster.admin.listLeases()).records).toEqual([]);

    // (The in-memory dataplane is the js engine's whatever the flag says: what is tested is the control plane's answer.)
    await setEncryption('off');
    const nodes = [cluster.add('n1', 0), cluster.add('k1', 1, { engine: 'kernel' })];
    await Promise.all(nodes.map((x) => x.start()));
    await cluster.until('every table complete', () => nodes.every((x) => x.status().peers.length === 1));
    const [a, k] = nodes as [ClusterNode, ClusterNode];
    await setEncryption('wireguard');
    await cluster.elapse(ETCD_PROBE_MS);
    await cluster.until('n1 to publish its key', () => allApplied([a], 'wireguard'));
    await cluster.elapse(ETCD_PROBE_MS);
    expect(k.events('encryption_unsupported')).toHaveLength(1);
    expect(k.status().encryption).toMatchObject({ mode: 'wireguard', published: false });
    expect(k.host.tunConfig?.mtu).toBe(1464);
    expect((await cluster.admin.listLeases()).records.find((r) => r.lease.nodeName === 'k1')!.lease.wireguardPublicKey).toBeFalsy();
    await ping(a, k);
    await ping(k, a);
  });
});
