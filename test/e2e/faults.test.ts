// weftd under faults, on the lab: leases deleted, revoked or stolen under a
// running daemon (a stolen subnet is replaced by another), SIGKILL and restart, etcd down for 30 s, etcd wiped, etcd
// frozen. Each step leaves the cluster healthy for the next; every wait is
// bounded. Short --lease-ttl and --resync-interval keep renewals and
// re-lists inside the outages.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { type LogEvent, PREFIX, POD_NETWORK, WeftCluster, weftdEvents } from '../lab/cluster.js';
import { createLeaseIfFree } from '../lab/kernel_node.js';
import type { LabProcess } from '../lab/lab.js';
import { pidAlive } from '../lab/netns.js';
import { sleep, until as pollUntil } from '../harness/until.js';

const TTL_S = 15;
const RESYNC_S = 5;
const OUTAGE_MS = 30_000;

const keyOf = (subnet: string): string => `${PREFIX}/network/subnets/${subnet.replace('/', '-')}`;

const events = weftdEvents;

/** Polls a cluster (HTTP, pings) five times a second at most. */
const until = <T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 200): Promise<T> => pollUntil(what, fn, timeoutMs, everyMs);

describe.skipIf(rootSkipReason())('faults (needs root: network namespaces, TUN, weftd)', () => {
  let c: WeftCluster;
  const weftd = (i: number): LabProcess => c.nodes.get(i)!.weftd!;
  const pod = (i: number): string => c.nodes.get(i)!.pods[0]!;
  const podIp = (i: number): string => c.lab.podIp(pod(i));
  const subnet = (i: number): string => c.nodes.get(i)!.subnet!;
  const mark = (i: number): number => weftd(i).log().length;
  const after = (i: number, from: number, event: string): LogEvent[] => events(weftd(i), from).filter((e) => e.event === event);
  const waitEvent = (i: number, from: number, event: string, timeoutMs: number): Promise<LogEvent> =>
    until(`${event} in node${i}'s log`, () => after(i, from, event)[0], timeoutMs);

  /** The lease stored under a subnet's key: its value and etcd lease ID (hex, as etcdctl takes it), or undefined. */
  async function storedLease(s: string): Promise<{ value: Record<string, unknown>; leaseHex: string } | undefined> {
    const out = await c.lab.etcdctl(['get', keyOf(s), '-w', 'json']);
    const kv = (JSON.parse(out) as { kvs?: { value: string }[] }).kvs?.[0];
    if (!kv) return undefined;
    // The lease ID is a 64-bit JSON number: read its digits, not a lossy double.
    const lease = /"lease":(\d+)/.exec(out)?.[1] ?? '0';
    return { value: JSON.parse(Buffer.from(kv.value, 'base64').toString()) as Record<string, unknown>, leaseHex: BigInt(lease).toString(16) };
  }

  /** What node i's weftd says on GET /readyz (its status endpoint, on the node namespace's loopback). */
  async function readyz(i: number): Promise<{ code: number; status: string }> {
    const js = "fetch('http://127.0.0.1:9474/readyz',{signal:AbortSignal.timeout(2000)}).then(async(r)=>console.log(JSON.stringify({code:r.status,status:(await r.json()).status})))";
    const r = await c.lab.exec(c.lab.nodeNs(i), [process.execPath, '-e', js], { timeoutMs: 5000 });
    return JSON.parse(r.stdout) as { code: number; status: string };
  }

  const allPairsPing = (nodes: number[], timeoutS?: number): Promise<string[]> => c.pingPairs(nodes, timeoutS);

  /** Starts weftd on node i and waits for `ready` itself (up to readyMs), then adds a pod: for starts that outlast startNode's own wait. */
  async function startSlowNode(i: number, readyMs: number): Promise<void> {
    // startNode's own 20 s wait for `ready` may run out while etcd is down;
    // the weftd it spawned keeps running and is waited for here.
    await c.startNode(i).catch(() => undefined);
    const p = c.nodes.get(i)?.weftd;
    if (!p) throw new Error(`node ${i}: startNode spawned no weftd`);
    const ready = JSON.parse(await p.waitForLog(/"event":"ready"/, readyMs)) as { subnet: string };
    const s = c.nodes.get(i)!;
    s.subnet = ready.subnet;
    const [network, len] = ready.subnet.split('/');
    if (s.pods.length === 0) s.pods = await c.lab.addPods(i, 1, { network: network!, prefixLen: Number(len) });
  }

  beforeAll(async () => {
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 1, name: 'faults', flags: ['--lease-ttl', String(TTL_S), '--resync-interval', String(RESYNC_S)] });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  it('re-acquires the same subnet when its key is deleted or its etcd lease revoked under it', async () => {
    expect(await allPairsPing([1, 2])).toEqual([]);
    const pids = [weftd(1).pid, weftd(2).pid];

    // node1: its key deleted.
    let m = mark(1);
    await c.lab.etcdctl(['del', keyOf(subnet(1))]);
    const re1 = await waitEvent(1, m, 'lease_reacquired', 10_000);
    expect(re1.subnet).toBe(subnet(1));
    expect(after(1, m, 'lease_lost')).toHaveLength(1);

    // node2: its etcd lease revoked, as when it expires (etcd deletes the key).
    m = mark(2);
    const held = await storedLease(subnet(2));
    expect(held?.value.nodeName).toBe('node2');
    await c.lab.etcdctl(['lease', 'revoke', held!.leaseHex]);
    const re2 = await waitEvent(2, m, 'lease_reacquired', 10_000);
    expect(re2.subnet).toBe(subnet(2));

    for (const i of [1, 2]) expect((await storedLease(subnet(i)))?.value.nodeName).toBe(`node${i}`);
    expect([weftd(1).pid, weftd(2).pid]).toEqual(pids);
    expect(await allPairsPing([1, 2])).toEqual([]);
  }, 40_000);

  it('stays up and takes another subnet when its own was taken while it was not looking; a restart with the old subnet free takes it back', async () => {
    const p = weftd(2);
    const s2 = subnet(2);
    const m1 = mark(1);
    const m2 = mark(2);
    // Freeze node2's weftd, hand its subnet to another node, thaw it.
    p.kill('SIGSTOP');
    try {
      await c.lab.etcdctl(['del', keyOf(s2)]);
      const value = { nodeName: 'intruder', publicIp: '198.18.0.99', port: 4790, vni: 1, version: 'test', engine: 'kernel' };
      expect(await createLeaseIfFree(c.lab, s2, value, 60)).toMatch(/^[0-9a-f]+$/);
    } finally {
      p.kill('SIGCONT');
    }
    const lost = await waitEvent(2, m2, 'subnet_lost', 15_000);
    expect(lost).toMatchObject({ subnet: s2, reason: 'now leased by node intruder (198.18.0.99)' });
    const ready = await waitEvent(2, m2, 'ready', 15_000);
    const moved = String(ready.subnet);
    expect(moved).not.toBe(s2);
    expect(pidAlive(p.pid)).toBe(true);
    expect(c.subnetEnv(2).FLANNEL_SUBNET).toBe(moved.replace(/0\/24$/, '1/24'));
    // node1 routes the subnet to its new holder, and node2's new one to node2.
    await until('node1 routes to the intruder and to node2\'s new subnet', () => {
      const seen = events(weftd(1), m1).filter((e) => /^peer_(added|changed)$/.test(e.event ?? ''));
      return seen.some((e) => e.node === 'intruder') && seen.some((e) => e.node === 'node2' && e.subnet === moved);
    }, 10_000);

    // Back to the subnet its pods use: the intruder and node2's new lease go, and its record of the last subnet names the old one.
    await c.stopNode(2);
    await c.lab.etcdctl(['del', keyOf(s2)]);
    await c.lab.etcdctl(['del', keyOf(moved)]);
    writeFileSync(join(c.nodeDir(2), 'state', 'subnet'), `${s2}\n`);
    const back = await c.startNode(2);
    expect(back.subnet).toBe(s2);
    expect(events(weftd(2)).find((e) => e.event === 'lease_acquired')?.how).toBe('reclaimed');
    expect(await allPairsPing([1, 2], 8)).toEqual([]);
  }, 60_000);

  it('after SIGKILL, restarts on the same subnet and pod traffic flows within 5 s of ready', async () => {
    const before = subnet(2);
    const exit = await c.stopNode(2, 'SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    const s = await c.startNode(2);
    expect(s.subnet).toBe(before);
    const ready = events(weftd(2)).find((e) => e.event === 'ready')!;
    // First successful pings both ways, timed from the restart's `ready` line.
    const firstOk = async (from: number, to: number): Promise<number> =>
      until(`ping node${from} -> node${to}`, async () => ((await c.lab.ping(pod(from), podIp(to), { count: 1, timeoutS: 1 })) ? Date.now() : undefined), 10_000, 0);
    const inMs = (await firstOk(1, 2)) - ready.time;
    const outMs = (await firstOk(2, 1)) - ready.time;
    process.stderr.write(`[faults] SIGKILL restart: ping node1->node2 ok ${inMs} ms after ready, node2->node1 ${outMs} ms\n`);
    expect(inMs).toBeLessThan(5000);
    expect(outMs).toBeLessThan(5000);
  }, 40_000);

  it('keeps forwarding through a 30 s etcd outage, resyncs after it, and admits a node started during it', async () => {
    for (const i of [1, 2]) expect(await readyz(i)).toEqual({ code: 200, status: 'ready' });
    const marks = new Map([1, 2].map((i) => [i, mark(i)] as const));
    const pids = [weftd(1).pid, weftd(2).pid];
    await c.lab.stopEtcd();
    const down = Date.now();
    const failed: string[] = [];
    const readiness = new Set<string>();
    let rounds = 0;
    let late: Promise<void> | undefined;
    try {
      while (Date.now() - down < OUTAGE_MS) {
        // A node started 8 s into the outage: its weftd retries until etcd answers.
        if (!late && Date.now() - down >= 8000) {
          late = startSlowNode(3, OUTAGE_MS + 45_000);
          late.catch(() => undefined);
        }
        const t = Date.now();
        failed.push(...(await allPairsPing([1, 2], 2)).map((f) => `${f} at ${Math.round((t - down) / 1000)} s`));
        // weftd probes etcd every 5 s: from then on it says degraded (forwarding, etcd unreachable).
        if (t - down >= 8000) for (const i of [1, 2]) readiness.add(`node${i} ${JSON.stringify(await readyz(i))}`);
        rounds++;
        await sleep(Math.max(0, 3000 - (Date.now() - t)));
      }
      expect(failed, 'pod pings during the outage').toEqual([]);
      expect(rounds).toBeGreaterThanOrEqual(8);
      expect([...readiness].sort()).toEqual(['node1 {"code":200,"status":"degraded"}', 'node2 {"code":200,"status":"degraded"}']);
      for (const i of [1, 2]) {
        expect(pidAlive(weftd(i).pid), `node${i}'s weftd is running`).toBe(true);
        // It noticed: renewals (every TTL/3) and re-lists (every resync interval) failed.
        expect(after(i, marks.get(i)!, 'lease_renew_failed').length, `node${i} lease_renew_failed`).toBeGreaterThan(0);
        expect(after(i, marks.get(i)!, 'watch_resync_failed').length, `node${i} watch_resync_failed`).toBeGreaterThan(0);
      }
      const n3 = c.nodes.get(3)?.weftd;
      expect(n3, 'node3 weftd spawned during the outage').toBeDefined();
      expect(events(n3!).some((e) => e.event === 'etcd_unavailable')).toBe(true);
      expect(events(n3!).some((e) => e.event === 'ready')).toBe(false);
    } finally {
      if (!c.lab.etcdRunning) await c.lab.startEtcd();
    }
    const up = Date.now();

    // The running daemons reconnect, re-list and hold their leases again.
    for (const i of [1, 2]) {
      const m = marks.get(i)!;
      await until(`node${i} re-listed after etcd came back`, () => after(i, m, 'watch_resync').find((e) => e.time >= up), 20_000);
      await until(`node${i} holds its lease again`, async () => {
        const l = await storedLease(subnet(i)).catch(() => undefined);
        return l?.value.nodeName === `node${i}` && after(i, m, 'lease_reacquired').some((e) => e.time >= up) ? true : undefined;
      }, 20_000, 500);
    }
    for (const i of [1, 2]) await until(`node${i} says ready again`, async () => ((await readyz(i)).status === 'ready' ? true : undefined), 10_000, 500);
    // The node started during the outage comes up and every pod reaches every other; nobody restarted.
    await late;
    process.stderr.write(`[faults] etcd outage: node3 ready ${events(weftd(3)).find((e) => e.event === 'ready')!.time - up} ms after etcd was back\n`);
    for (const i of [1, 2]) await until(`node${i} adds node3`, () => events(weftd(i), marks.get(i)!).find((e) => e.event === 'peer_added' && e.node === 'node3'), 15_000);
    expect(await allPairsPing([1, 2, 3], 5)).toEqual([]);
    expect([weftd(1).pid, weftd(2).pid]).toEqual(pids);
  }, 150_000);

  it('after etcd is wiped, running nodes re-create their leases on the same subnets; a new node needs weftctl init', async () => {
    const nodes = [1, 2, 3];
    const marks = new Map(nodes.map((i) => [i, mark(i)] as const));
    const pids = nodes.map((i) => weftd(i).pid);
    await c.lab.stopEtcd();
    await c.lab.startEtcd({ wipe: true });
    const up = Date.now();
    for (const i of nodes) {
      const re = await waitEvent(i, marks.get(i)!, 'lease_reacquired', 20_000);
      expect(re.subnet).toBe(subnet(i));
      expect((await storedLease(subnet(i)))?.value.nodeName).toBe(`node${i}`);
    }
    process.stderr.write(`[faults] etcd wiped: all leases back ${Date.now() - up} ms after etcd was up\n`);
    // The config is not re-created by the daemons: that is weftctl init's job.
    expect((await c.lab.etcdctl(['get', `${PREFIX}/network/config`])).trim()).toBe('');
    expect(await allPairsPing(nodes, 5)).toEqual([]);
    expect(nodes.map((i) => weftd(i).pid)).toEqual(pids);

    await c.weftctl(['init', '--network', POD_NETWORK, '--subnet-len', '24']);
    await c.startNode(4, 1);
    expect(new Set(nodes.concat(4).map(subnet)).size).toBe(4);
    for (const i of nodes) await until(`node${i} adds node4`, () => events(weftd(i), marks.get(i)!).find((e) => e.event === 'peer_added' && e.node === 'node4'), 10_000);
    expect(await allPairsPing([1, 4], 5)).toEqual([]);
    expect(await allPairsPing([3, 4], 5)).toEqual([]);
  }, 90_000);

  it('with etcd frozen (connections open, no answers) keeps forwarding, keeps retrying, and tears down promptly on SIGTERM', async () => {
    const running = [1, 2, 3];
    const marks = new Map(running.map((i) => [i, mark(i)] as const));
    const s4 = subnet(4);
    const p4 = weftd(4);
    const etcd = c.lab.etcdProcess;
    etcd.kill('SIGSTOP');
    const frozen = Date.now();
    const failed: string[] = [];
    let stoppedInMs: number | undefined;
    let exit: { code: number | null; signal: string | null } | undefined;
    try {
      while (Date.now() - frozen < 16_000) {
        const t = Date.now();
        failed.push(...(await allPairsPing(running, 2)).map((f) => `${f} at ${Math.round((t - frozen) / 1000)} s`));
        if (stoppedInMs === undefined && t - frozen >= 6000) {
          // Teardown must not wait for etcd's answer (to a watch cancel, say).
          const m4 = mark(4);
          const t0 = Date.now();
          p4.kill('SIGTERM');
          const stopped = await waitEvent(4, m4, 'stopped', 10_000);
          stoppedInMs = stopped.time - t0;
          // And the process is gone, though etcd still holds calls open.
          exit = await Promise.race([p4.exited, sleep(3000).then(() => undefined)]);
        }
        await sleep(Math.max(0, 3000 - (Date.now() - t)));
      }
      expect(failed, 'pod pings while etcd was frozen').toEqual([]);
      expect(stoppedInMs!).toBeLessThan(8000);
      expect(exit, 'weftd on node4 exited while etcd was frozen').toEqual({ code: 0, signal: null });
      // Re-lists fail on their deadlines and are retried, rather than waiting on etcd forever.
      for (const i of running) expect(after(i, marks.get(i)!, 'watch_resync_failed').length, `node${i} watch_resync_failed`).toBeGreaterThan(0);
    } finally {
      etcd.kill('SIGCONT');
    }
    c.nodes.get(4)!.weftd = undefined;
    process.stderr.write(`[faults] etcd frozen: node4 tore down ${stoppedInMs} ms after SIGTERM\n`);
    // Thawed, etcd expires the leases it could not renew; every node takes its own back.
    for (const i of running) {
      await until(`node${i} holds ${subnet(i)} again`, async () => ((await storedLease(subnet(i)).catch(() => undefined))?.value.nodeName === `node${i}` ? true : undefined), 25_000, 500);
    }
    expect((await c.startNode(4)).subnet).toBe(s4);
    expect(await allPairsPing([1, 2, 3, 4], 5)).toEqual([]);
  }, 100_000);
});
