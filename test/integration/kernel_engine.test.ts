// The kernel engine's parts on the real kernel, in a namespace of the test's
// own (fixtures/kernel_engine.ts): the port-in-use refusal, a 1,000-peer table
// as 1,000 encap routes and a node set of 1,000, a change as a diff of one
// route, a peer on another port left unrouted, the device deleted and set
// down (not healthy, then repaired with its routes, its counts kept), the
// filter deleted (installed again), and nothing left after close.

import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { run } from '../lab/exec.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/kernel_engine.ts', import.meta.url));
const skip = rootSkipReason();

describe.skipIf(skip)(`the kernel engine on the real kernel${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const ns = `wtk-${process.pid}-${randomBytes(2).toString('hex')}`;
  const steps = new Map<string, Record<string, unknown>>();

  beforeAll(async () => {
    await run('ip', ['netns', 'add', ns], { timeoutMs: 5000 });
    const r = await run('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', FIXTURE], {
      timeoutMs: 70_000,
      allowFail: true,
      env: { WEFT_TEST_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
    });
    for (const line of r.stdout.split('\n').filter((l) => l.startsWith('{'))) {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.error) throw new Error(`fixture: ${String(o.error)}\n${r.stderr}`);
      steps.set(String(o.step), o);
    }
    if (r.code !== 0) throw new Error(`fixture exited ${r.code}: ${r.stderr}`);
  }, 80_000);
  afterAll(async () => {
    await run('ip', ['netns', 'del', ns], { timeoutMs: 10_000, allowFail: true });
  });

  it('refuses a port another program holds, with WEFT_ENGINE_REFUSED, and leaves no device or route', () => {
    expect(steps.get('port bound')).toMatchObject({ refused: true, code: 'WEFT_ENGINE_REFUSED', deviceLeft: false, routesLeft: 0 });
    expect(steps.get('port bound')!.message).toMatch(/^--engine kernel: UDP port 4790 is already bound on this node/);
  });

  it('turns a 1,000-peer table into 1,000 encap routes to the right nodes and a node set of 1,000', () => {
    expect(steps.get('table')).toMatchObject({ adopted: false, routes: 1000, wrongRemotes: 0, nodes: 1000, healthy: true, details: { device: 'weftk0', firewall: 'nftables', routes: 1000, unroutablePeers: 0, deviceRepairs: 0 } });
  });

  it('applies a change as a diff: one peer moved changes one route; one leaving and one on another port remove two', () => {
    expect(steps.get('one peer moved')).toEqual({ step: 'one peer moved', changed: ['198.19.1.192/26'], now: '198.18.9.9' });
    expect(steps.get('one left, one on another port')).toEqual({ step: 'one left, one on another port', changed: ['198.19.2.0/26', '198.19.2.64/26'], unroutable: 1, logged: ['198.19.2.64/26'] });
  });

  it('is not healthy while its device is deleted or set down, keeps its counts, and repairs it with every route', () => {
    expect(steps.get('deleted')).toMatchObject({ healthyAfter: false, countersDropped: [], changed: [], repairs: 1, event: { event: 'kernel_device_repaired', why: 'deleted', recreated: true, routes: 998 } });
    expect(steps.get('set down')).toMatchObject({ healthyAfter: false, countersDropped: [], changed: [], repairs: 2, event: { event: 'kernel_device_repaired', why: 'set down', recreated: false, routes: 998 } });
    // What the counters kept is the five datagrams sent out through the device before it was first deleted.
    for (const how of ['deleted', 'set down']) expect(steps.get(how)!.insidePackets).toBeGreaterThanOrEqual(5);
  });

  it('installs its filter again when the table is deleted under it, and leaves nothing after close', () => {
    expect(steps.get('filter deleted')).toMatchObject({ event: true });
    expect(steps.get('closed')).toMatchObject({ deviceLeft: false, routesLeft: 0, filterLeft: false });
  });
});
