// weft's WireGuard protocol core (src/wireguard) against Debian's
// wireguard-go, a peer no one here wrote: a small TypeScript peer
// (fixtures/wg_peer.ts) on node 2 of a lab completes the handshake as
// initiator and as responder, and ICMP echoes cross the tunnel both ways.

import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { Lab, type LabProcess } from '../lab/lab.js';
import { ipIn } from '../lab/netns.js';
import { missingCommand } from '../lab/overlay_node.js';
import { WG_COMMANDS, WG_PORT, latestHandshake as wgLatestHandshake, startWireguardGo, wgKeyPair } from '../lab/wireguard_node.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/wg_peer.ts', import.meta.url));
const skip = rootSkipReason() || missingCommand(WG_COMMANDS);

describe.skipIf(skip)(`WireGuard handshake with wireguard-go${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let lab: Lab;
  let dev: string;
  let keys: { go: { privateKey: string; publicKey: string }; weft: { privateKey: string; publicKey: string } };

  beforeAll(async () => {
    lab = await Lab.create({ nodes: 2, name: 'wg-handshake' });
    dev = `${lab.prefix}g`;
    keys = { go: await wgKeyPair(lab, lab.nodeNs(1)), weft: await wgKeyPair(lab, lab.nodeNs(1)) };
    const ns = lab.nodeNs(1);
    await startWireguardGo(lab, ns, dev, { privateKey: keys.go.privateKey, port: WG_PORT, peers: [{ publicKey: keys.weft.publicKey, endpoint: `${lab.nodeIp(2)}:${WG_PORT}`, allowedIps: '198.19.2.0/24' }] });
    await ipIn(ns, ['addr', 'add', '198.19.1.1/24', 'dev', dev]);
    await ipIn(ns, ['link', 'set', dev, 'mtu', '1440', 'up']);
    await ipIn(ns, ['route', 'add', '198.19.2.0/24', 'dev', dev]);
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  /** The fixture peer on node 2, and a wait for its events. */
  function peer(mode: 'initiate' | 'respond'): { proc: LabProcess; event: (name: string) => Promise<Record<string, unknown>> } {
    const proc = lab.spawn(lab.nodeNs(2), [process.execPath, '--import', 'tsx', FIXTURE, lab.nodeIp(2), lab.nodeIp(1), mode], {
      env: { WG_PRIVATE_KEY: keys.weft.privateKey, WG_PEER_KEY: keys.go.publicKey, WEFT_TEST_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
    });
    const event = async (name: string): Promise<Record<string, unknown>> => JSON.parse(await proc.waitForLog(new RegExp(`"event":"${name}"`), 15_000)) as Record<string, unknown>;
    return { proc, event };
  }

  const latestHandshake = (): Promise<number> => wgLatestHandshake(lab, lab.nodeNs(1), dev);

  it('as initiator: wireguard-go answers, and an echo request to its side comes back through the tunnel', async () => {
    const p = peer('initiate');
    expect((await p.event('session')).initiator).toBe(true);
    await p.event('echo_reply');
    expect(await latestHandshake()).toBeGreaterThan(0);
    expect(p.proc.log()).not.toContain('"refused"');
    p.proc.kill('SIGTERM');
    await p.proc.exited;
  });

  it('as responder: wireguard-go initiates for a ping from its side, which the peer answers', async () => {
    // A fresh wireguard-go session: remove and re-add the peer, forgetting its keypairs.
    const ns = lab.nodeNs(1);
    await lab.exec(ns, ['wg', 'set', dev, 'peer', keys.weft.publicKey, 'remove']);
    await lab.exec(ns, ['wg', 'set', dev, 'peer', keys.weft.publicKey, 'endpoint', `${lab.nodeIp(2)}:${WG_PORT}`, 'allowed-ips', '198.19.2.0/24']);
    await lab.exec(ns, ['ip', 'route', 'replace', '198.19.2.0/24', 'dev', dev]);
    const p = peer('respond');
    await p.event('ready');
    const ping = await lab.exec(ns, ['ping', '-n', '-c', '3', '-i', '0.3', '-W', '2', '198.19.2.1'], { allowFail: true, timeoutMs: 15_000 });
    expect(ping.stdout).toMatch(/3 packets transmitted, 3 received/);
    expect((await p.event('session')).initiator).toBe(false);
    await p.event('echo_answered');
    expect(p.proc.log()).not.toContain('"refused"');
    p.proc.kill('SIGTERM');
    await p.proc.exited;
  });
});
