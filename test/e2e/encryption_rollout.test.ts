// Encryption turned on on a running cluster, as docs/encryption.md's rollout
// steps do it: `weftctl encryption wireguard`, then `weftctl encryption
// wireguard-only`, while a pod pings another every 50 ms and a TCP stream
// runs between them; nobody restarts. The test records what was lost; the
// stream arrives intact, and VXLAN-GPE is refused afterwards.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { sleep, until } from '../harness/until.js';
import { WeftCluster } from '../lab/cluster.js';
import { startPingStream } from '../lab/ping_stream.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const ENGINES: readonly string[] = ['native', 'js'];

for (const engine of ENGINES) {
  describe.skipIf(rootSkipReason())(`encryption rolled out on a running cluster, ${engine} engines (needs root: network namespaces, TUN, weftd)`, () => {
    let c: WeftCluster;
    beforeAll(async () => {
      c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: `rollout-${engine}`, engine });
    }, 90_000);
    afterAll(async () => {
      await c?.destroy();
    });

    /** Waits until both nodes run with `mode` applied (their probe reads the config every 5 s). */
    const applied = (mode: string): Promise<unknown> =>
      until(`both nodes on ${mode}`, async () => {
        for (const i of [1, 2]) {
          const e = (JSON.parse((await c.http(i, '/status')).body) as { encryption: { mode: string; published: boolean } }).encryption;
          if (e.mode !== mode || e.published !== (mode !== 'off')) return false;
        }
        return true;
      }, 20_000, 200);

    it('off -> wireguard -> wireguard-only under a ping every 50 ms and a TCP stream: the stream arrives intact, what was lost is recorded, VXLAN-GPE is refused after', async () => {
      const [a, b] = [c.nodes.get(1)!.pods[0]!, c.nodes.get(2)!.pods[0]!];
      const pings = startPingStream(c.lab, a, c.lab.podIp(b), 50);
      const stream = c.transfer(a, b, 16 * 1024 * 1024, { paceS: 24, port: 5021 });
      const t0 = Date.now();
      await sleep(2000);
      expect(await c.weftctl(['encryption', 'wireguard'])).toMatch(/changed from off/);
      await applied('wireguard');
      const tWireguard = Date.now() - t0;
      await sleep(3000);
      expect(await c.weftctl(['encryption', 'wireguard-only'])).toMatch(/changed from wireguard/);
      await applied('wireguard-only');
      const tOnly = Date.now() - t0;
      const { sent, received } = await stream;
      const report = await pings.stop();
      const drops = async (i: number): Promise<string> =>
        Object.entries(await c.counters(i, 0))
          .filter(([k, v]) => v > 0 && (k.includes('_drop_') || k.startsWith('wg_')))
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
      process.stdout.write(
        `[rollout ${engine}] wireguard applied on both nodes ${(tWireguard / 1000).toFixed(1)} s and wireguard-only ${(tOnly / 1000).toFixed(1)} s into the run; ` +
          `pings: ${report.sent} sent, ${report.lost.length} lost (seq ${report.lost.join(',') || '-'}), ${report.inFlight} in flight at the end; TCP stream ${received === sent ? 'intact' : 'DAMAGED'}; ` +
          `node1: ${await drops(1)}; node2: ${await drops(2)}\n`,
      );
      expect(sent).toMatch(/^16777216 [0-9a-f]{64}$/);
      expect(received).toBe(sent);
      // Loss is bounded by the moments one node of the pair applied a step and the other had not seen it yet (watch latency), far under a second of pings.
      expect(report.lost.length).toBeLessThanOrEqual(20);
      expect(report.answered).toBeGreaterThan(report.sent - 25);
      for (const i of [1, 2]) expect(c.subnetEnv(i).FLANNEL_MTU).toBe('1440');

      // VXLAN-GPE from node 1, well formed and from its own subnet, is refused now, counted, and never reaches the pod.
      const before = await c.counters(2);
      await c.lab.exec(c.lab.nodeNs(1), [process.execPath, '--import', 'tsx', join(FIXTURES, 'udp_spray.ts'), c.lab.nodeIp(2), '4790', 'spoofed', '20', c.lab.podIp(a), c.lab.podIp(b)], { timeoutMs: 30_000 });
      const after = await c.counters(2);
      expect(after.outside_drop_plaintext! - before.outside_drop_plaintext!).toBe(20);
      expect(after.outside_packets! - before.outside_packets!).toBe(0);
      expect(await c.lab.ping(a, c.lab.podIp(b), { count: 2, timeoutS: 5 })).toBe(true);
    }, 120_000);
  });
}
