import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Lab } from './lab.js';
import { run } from './exec.js';
import { listNamespaces, livePids, pidAlive } from './netns.js';

const isRoot = process.getuid?.() === 0;

/** A `wl<residue><hex>-x` name whose residue no running process has, i.e. one that stale cleanup must delete. */
function staleName(): string {
  const residues = new Set(livePids().map((pid) => pid % 10000));
  const hex = randomBytes(2).toString('hex');
  for (let r = 9999; r > 0; r--) if (!residues.has(r)) return `wl${r}${hex}-x`;
  throw new Error('no free pid residue');
}

describe.skipIf(!isRoot)('lab topology (needs root: creates network namespaces)', () => {
  let lab: Lab | undefined;
  let stale = '';
  let staleSurvived = true;

  beforeAll(async () => {
    stale = staleName();
    await run('ip', ['netns', 'add', stale]);
    lab = await Lab.create({ nodes: 2, name: 'lab.test' });
    staleSurvived = (await listNamespaces()).includes(stale);
  }, 30_000);

  afterAll(async () => {
    try {
      await lab?.destroy();
    } finally {
      if (stale && (await listNamespaces()).includes(stale)) await run('ip', ['netns', 'del', stale]);
    }
  }, 30_000);

  it('deleted a stale namespace left by a dead run', () => {
    expect(staleSurvived).toBe(false);
  });

  it('builds the namespaces and addresses of the plan', async () => {
    const l = lab!;
    expect(l.prefix).toMatch(/^wl\d+[0-9a-f]{4}$/);
    expect(l.etcdEndpoint).toBe('http://198.18.0.254:2379');
    expect(l.nodeNs(1)).toBe(`${l.prefix}-n1`);
    expect(l.nodeIp(2)).toBe('198.18.0.2');
    const names = await listNamespaces();
    for (const ns of [`${l.prefix}-sw`, `${l.prefix}-etcd`, `${l.prefix}-n1`, `${l.prefix}-n2`]) expect(names).toContain(ns);
    const addr = await l.exec(l.nodeNs(1), ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(addr.stdout).toContain('198.18.0.1/24');
    const routes = await l.exec(l.nodeNs(1), ['ip', '-4', 'route', 'show']);
    expect(routes.stdout).not.toMatch(/^default/m);
    const fwd = await l.exec(l.nodeNs(2), ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter']);
    expect(fwd.stdout.split('\n').slice(0, 2)).toEqual(['1', '0']);
    await expect(l.exec('not-a-lab-ns', ['true'])).rejects.toThrow(/not a namespace of this lab/);
  }, 60_000);

  it('runs etcd that answers put/get', async () => {
    const l = lab!;
    expect((await l.etcdctl(['put', '/weft-lab/hello', 'world'])).trim()).toBe('OK');
    expect(await l.etcdctl(['get', '--print-value-only', '/weft-lab/hello'])).toBe('world\n');
    // Reachable from a node over the underlay, too.
    const r = await l.exec(l.nodeNs(1), ['etcdctl', `--endpoints=${l.etcdEndpoint}`, 'get', '--print-value-only', '/weft-lab/hello'], {
      env: { ETCDCTL_API: '3' },
    });
    expect(r.stdout).toBe('world\n');
    await expect(l.etcdctl(['no-such-command'])).rejects.toThrow(/-etcd: .*etcdctl/);
  }, 60_000);

  it('connects the nodes over the underlay', async () => {
    const l = lab!;
    expect(await l.ping(l.nodeNs(1), l.nodeIp(2))).toBe(true);
    expect(await l.ping(l.nodeNs(2), '198.18.0.254')).toBe(true);
    expect(await l.ping(l.nodeNs(1), '198.18.0.77', { count: 1, timeoutS: 1 })).toBe(false);
  }, 60_000);

  it('adds pods on a node bridge that reach each other and their gateway', async () => {
    const l = lab!;
    const pods = await l.addPods(1, 2, { network: '198.19.1.0', prefixLen: 24 });
    expect(pods).toEqual([`${l.prefix}-n1p1`, `${l.prefix}-n1p2`]);
    const [a, b] = pods as [string, string];
    expect(l.podIp(a)).toBe('198.19.1.2');
    expect(l.podIp(b)).toBe('198.19.1.3');
    expect(await l.ping(a, l.podIp(b))).toBe(true);
    expect(await l.ping(b, l.podIp(a))).toBe(true);
    expect(await l.ping(a, '198.19.1.1')).toBe(true);
    expect(await l.ping(b, '198.19.1.1')).toBe(true);
    const link = await l.exec(a, ['ip', 'link', 'show', 'dev', 'eth0']);
    expect(link.stdout).toContain('mtu 1464');
    const route = await l.exec(a, ['ip', '-4', 'route', 'show', 'default']);
    expect(route.stdout).toContain('via 198.19.1.1');
    // Numbering continues on a second call.
    const more = await l.addPods(1, 1, { network: '198.19.1.0', prefixLen: 24 });
    expect(more).toEqual([`${l.prefix}-n1p3`]);
    expect(l.podIp(more[0]!)).toBe('198.19.1.4');
    await expect(l.addPods(1, 1, { network: '198.19.9.0', prefixLen: 24 })).rejects.toThrow(/cni0 already has/);
  }, 60_000);

  it('adds a node later', async () => {
    const l = lab!;
    const n = await l.addNode();
    expect(n).toBe(3);
    expect(await l.ping(l.nodeNs(3), l.nodeIp(1))).toBe(true);
  }, 60_000);

  it('spawns tracked processes with logs', async () => {
    const l = lab!;
    const p = l.spawn(l.nodeNs(2), ['sh', '-c', 'echo "hello $LAB_WORD"; sleep 0.3; echo bye >&2; exit 3'], {
      env: { LAB_WORD: 'lab' },
    });
    expect(await p.waitForLog(/^hello lab$/, 5000)).toBe('hello lab');
    await expect(p.waitForLog(/never printed/, 5000)).rejects.toThrow(/exited \(code 3[\s\S]*bye/);
    expect(await p.exited).toEqual({ code: 3, signal: null });
    expect(p.log()).toBe('hello lab\nbye\n');

    const q = l.spawn(l.nodeNs(2), ['sleep', '30']);
    await expect(q.waitForLog(/x/, 200)).rejects.toThrow(/timed out after 200 ms/);
    q.kill();
    expect(await q.exited).toEqual({ code: null, signal: 'SIGTERM' });
  }, 60_000);

  it('destroys everything it created', async () => {
    const l = lab!;
    const etcdPid = l.etcdProcess.pid;
    const sleeper = l.spawn(l.nodeNs(1), ['sleep', '60']);
    expect(pidAlive(etcdPid)).toBe(true);
    const t0 = Date.now();
    await l.destroy();
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(10_000);
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${l.prefix}-`));
    expect(left).toEqual([]);
    expect(pidAlive(etcdPid)).toBe(false);
    expect(pidAlive(sleeper.pid)).toBe(false);
    expect(await sleeper.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(existsSync(l.dir)).toBe(process.env.WEFT_LAB_KEEP === '1');
    await l.destroy(); // idempotent
    await expect(l.exec(l.nodeNs(1), ['true'])).rejects.toThrow(/destroyed/);
  }, 60_000);
});
