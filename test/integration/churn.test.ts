// Registry churn against the run's loopback etcd: 50 clients, each with its
// own lease (LeaseManager + LeaseKeeper) and its own watch (LeaseWatcher),
// joining, leaving, crashing and restarting at random for a bounded time.
// Throughout, no subnet is held by two live clients; at the end every live
// client's route table is exactly the other live clients' leases.

import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import type { WeftError } from '../../src/errors.js';
import { formatCidr, formatIp, parseIp } from '../../src/net/ipv4.js';
import { LeaseKeeper } from '../../src/registry/lease_keeper.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import { LeaseWatcher } from '../../src/registry/lease_watcher.js';
import type { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import type { RouteTable } from '../../src/routes/route_table.js';
import { config, registry, uniquePrefix } from '../harness/registry_fixture.js';
import { sleep } from '../harness/until.js';

const CLIENTS = 50;
/** etcd3 clients are heavy: the 50 lease clients share these (each still has its own lease and watch). */
const REGISTRIES = 10;
const CHURN_MS = 12_000;
const WORKERS = 6;
const TTL_S = 6;
const RESYNC_MS = 2000;
/** /19 cut in /26: 128 subnets for ~50 clients (and a few crashed ones' until their TTL runs out), so freed subnets are taken again soon. */
const NETWORK = config('198.19.0.0/19', 26);
/** At most this many crashed clients' leases linger at once. */
const MAX_LINGERING = 10;

const silent = pino({ level: 'silent' });

interface Client {
  readonly name: string;
  readonly ip: string;
  readonly reg: EtcdRegistry;
  readonly manager: LeaseManager;
  readonly keeper: LeaseKeeper;
  readonly watcher: LeaseWatcher;
  table: RouteTable | undefined;
  readonly problems: string[];
}

describe('lease churn: 50 clients joining, leaving, crashing, restarting (real etcd)', () => {
  const prefix = uniquePrefix('churn');
  const regs = Array.from({ length: REGISTRIES }, () => registry(prefix));
  const all = new Set<Client>();

  afterAll(async () => {
    await Promise.allSettled([...all].map((c) => stopClient(c)));
    // Give back what is left so the keys do not outlive the test by a TTL.
    await Promise.allSettled([...all].map((c) => c.manager.release(c.keeper.record)));
    for (const r of regs) r.close();
  });

  async function startClient(name: string, ip: string, slot: number): Promise<Client> {
    const reg = regs[slot % REGISTRIES]!;
    const instance = randomBytes(6).toString('hex');
    const manager = new LeaseManager({
      registry: reg,
      config: NETWORK,
      value: { nodeName: name, publicIp: ip, port: 4790, vni: 1, version: 'churn', engine: 'js', instance },
      ttlS: TTL_S,
      stateDir: undefined,
      log: silent,
      clock: systemClock,
    });
    const rec = await manager.acquire();
    const problems: string[] = [];
    const keeper = new LeaseKeeper({ manager, initial: rec, ttlS: TTL_S, log: silent, events: { onLost: (err: WeftError) => problems.push(`fatal: ${err.message}`) }, clock: systemClock });
    const client: Client = {
      name,
      ip,
      reg,
      manager,
      keeper,
      table: undefined,
      problems,
      watcher: new LeaseWatcher({
        registry: reg,
        config: NETWORK,
        self: rec.subnet,
        nodeName: name,
        instance,
        publicIp: parseIp(ip),
        log: silent,
        resyncIntervalMs: RESYNC_MS,
        clock: systemClock,
        events: {
          onTable: (t) => {
            client.table = t;
          },
          onSelfDeleted: () => {
            problems.push('its own key was deleted');
            keeper.lostNow('test: own key deleted');
          },
          onSelfTaken: (r) => problems.push(`its subnet was taken by ${r.lease.nodeName}`),
        },
      }),
    };
    all.add(client);
    keeper.start();
    await client.watcher.start();
    return client;
  }

  async function stopClient(c: Client): Promise<void> {
    c.keeper.stop();
    await c.watcher.close();
  }

  it('never lets two live clients hold one subnet, and converges every table to the live leases', async () => {
    const live = new Set<Client>();
    let seq = 0;
    let population = 0; // live + joining
    const counts = { join: 0, leave: 0, crash: 0, restart: 0 };
    const violations: string[] = [];
    const restartMismatch: string[] = [];
    const errors: string[] = [];
    const crashedAt: number[] = []; // crashed clients' keys linger until their TTL runs out
    const lingering = (): number => crashedAt.filter((t) => Date.now() - t < (TTL_S + 1) * 1000).length;

    const join = async (): Promise<void> => {
      const n = seq++;
      population++;
      try {
        live.add(await startClient(`c${n}`, `198.18.${Math.floor(n / 250)}.${(n % 250) + 1}`, n));
        counts.join++;
      } catch (err) {
        population--;
        throw err;
      }
    };
    const pick = (): Client | undefined => {
      const arr = [...live];
      const c = arr[Math.floor(Math.random() * arr.length)];
      if (c) live.delete(c); // taken out at once: no other worker acts on it
      return c;
    };

    const t0 = Date.now();
    await Promise.all(Array.from({ length: CLIENTS }, () => join()));
    const startMs = Date.now() - t0;

    // The invariant, sampled while everything moves.
    const sample = (): void => {
      const bySubnet = new Map<string, string>();
      for (const c of live) {
        const s = formatCidr(c.keeper.record.subnet);
        const other = bySubnet.get(s);
        if (other !== undefined && violations.length < 10) violations.push(`${s} held by ${other} and ${c.name} at ${Date.now() - t0} ms`);
        bySubnet.set(s, c.name);
      }
    };
    const sampler = setInterval(sample, 10);

    const churnEnd = Date.now() + CHURN_MS;
    const worker = async (): Promise<void> => {
      while (Date.now() < churnEnd) {
        try {
          const r = Math.random();
          if (population < CLIENTS) {
            await join();
          } else if (r < 0.35) {
            const c = pick();
            if (c) {
              population--;
              await stopClient(c);
              await c.manager.release(c.keeper.record);
              all.delete(c);
              counts.leave++;
            }
          } else if (r < 0.45 && Date.now() < churnEnd - (TTL_S + 1) * 1000 && lingering() < MAX_LINGERING) {
            // Crash: stop renewing and go, the lease stays until its TTL runs out.
            const c = pick();
            if (c) {
              population--;
              await stopClient(c);
              all.delete(c);
              crashedAt.push(Date.now());
              counts.crash++;
            }
          } else {
            // Restart under the same name: it must get its subnet back.
            const c = pick();
            if (c) {
              const before = formatCidr(c.keeper.record.subnet);
              await stopClient(c);
              all.delete(c);
              const again = await startClient(c.name, c.ip, Number(c.name.slice(1)));
              const after = formatCidr(again.keeper.record.subnet);
              if (after !== before) restartMismatch.push(`${c.name}: ${before} -> ${after}`);
              live.add(again);
              counts.restart++;
            }
          }
        } catch (err) {
          errors.push(err instanceof Error ? err.message : String(err));
        }
        await sleep(Math.random() * 30);
      }
    };
    try {
      await Promise.all(Array.from({ length: WORKERS }, () => worker()));
    } finally {
      clearInterval(sampler);
    }
    sample();
    const churnMs = Date.now() - t0 - startMs;

    // Settle: the crashed clients' leases expire, then every table catches up.
    const expected = (): Map<string, string> =>
      new Map([...live].map((c) => [formatCidr(c.keeper.record.subnet), `${c.name} ${c.ip}:4790`] as const));
    const stored = async (): Promise<Map<string, string>> =>
      new Map((await regs[0]!.listLeases()).records.map((r) => [formatCidr(r.subnet), `${r.lease.nodeName} ${r.lease.publicIp}:${r.lease.port}`] as const));
    const tableOf = (c: Client): Map<string, string> =>
      new Map((c.table?.peers ?? []).map((p) => [formatCidr(p.subnet), `${p.node} ${formatIp(p.ip)}:${p.port}`] as const));
    const mismatches = (): string[] => {
      const want = expected();
      const out: string[] = [];
      for (const c of live) {
        const mine = new Map(want);
        mine.delete(formatCidr(c.keeper.record.subnet));
        const got = tableOf(c);
        const missing = [...mine.keys()].filter((s) => got.get(s) !== mine.get(s));
        const extra = [...got.keys()].filter((s) => !mine.has(s));
        if (missing.length || extra.length) out.push(`${c.name}: missing ${missing.join(',') || '-'}; extra ${extra.join(',') || '-'}`);
      }
      return out;
    };
    const settle0 = Date.now();
    const deadline = settle0 + (TTL_S + 8) * 1000;
    let etcdAgrees = false;
    let wrong: string[] = [];
    while (Date.now() < deadline) {
      etcdAgrees = JSON.stringify([...(await stored())].sort()) === JSON.stringify([...expected()].sort());
      wrong = mismatches();
      if (etcdAgrees && wrong.length === 0) break;
      await sleep(200);
    }
    const settleMs = Date.now() - settle0;
    process.stderr.write(
      `[churn] ${CLIENTS} clients up in ${startMs} ms; ${churnMs} ms of churn: ${JSON.stringify(counts)}; settled in ${settleMs} ms; live ${live.size}\n`,
    );

    expect(errors).toEqual([]);
    expect(violations).toEqual([]);
    expect(restartMismatch).toEqual([]);
    expect(counts.leave + counts.crash + counts.restart).toBeGreaterThan(CLIENTS);
    expect(etcdAgrees, 'etcd holds exactly the live clients\' leases').toBe(true);
    expect(wrong, 'every live client\'s table is the other live leases').toEqual([]);
    expect([...live].flatMap((c) => c.problems.map((p) => `${c.name}: ${p}`))).toEqual([]);
    expect(new Set([...live].map((c) => formatCidr(c.keeper.record.subnet))).size).toBe(live.size);
  }, 45_000);
});
