// The etcd registry and lease policy against a real etcd on loopback.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { systemClock } from '../../src/clock.js';
import { afterEach, describe, expect, it } from 'vitest';
import { isWeftError } from '../../src/errors.js';
import { formatCidr, parseCidr } from '../../src/net/ipv4.js';
import { LeaseManager } from '../../src/registry/lease_manager.js';
import type { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import type { SubnetLease } from '../../src/registry/schema.js';
import { captureLogger, config, etcdEndpoint, registry, uniquePrefix } from '../harness/registry_fixture.js';

const run = promisify(execFile);
const opened: EtcdRegistry[] = [];
afterEach(() => {
  for (const r of opened.splice(0)) r.close();
});

function reg(prefix: string, endpoint?: string, timeoutMs?: number): EtcdRegistry {
  const r = registry(prefix, endpoint, timeoutMs);
  opened.push(r);
  return r;
}

function lease(node: string, ip = '198.18.0.1'): SubnetLease {
  return { nodeName: node, publicIp: ip, port: 4790, vni: 1, version: 'test', engine: 'js', instance: 'i1' };
}

function manager(r: EtcdRegistry, node: string, network = '198.19.0.0/16', subnetLen = 24, stateDir?: string): LeaseManager {
  return new LeaseManager({ registry: r, config: config(network, subnetLen), value: lease(node), ttlS: 60, stateDir, log: captureLogger().log, clock: systemClock });
}

describe('etcd registry (real etcd on loopback)', () => {
  it('creates a lease only where none exists, renews and releases it', async () => {
    const r = reg(uniquePrefix('lease'));
    const s = parseCidr('198.19.5.0/24');
    const rec = await r.createLease(s, lease('a'), 30);
    expect(rec).toBeDefined();
    expect(await r.createLease(s, lease('b'), 30)).toBeUndefined();
    const ttl = await r.renewLease(rec!);
    expect(ttl).toBeGreaterThan(25);
    expect(await r.leaseTtl(rec!)).toBeGreaterThan(25);
    await r.releaseLease(rec!);
    expect((await r.listLeases()).records).toHaveLength(0);
    await expect(r.renewLease(rec!)).rejects.toMatchObject({ code: 'WEFT_LEASE_LOST' });
  });

  it('keeps the subnet a node holds, and takes back the recorded one after its key is gone', async () => {
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/weft-state-'));
    const r = reg(uniquePrefix('keep'));
    const m = manager(r, 'n1', '198.19.0.0/16', 24, dir);
    const first = await m.acquire();
    const again = await m.acquire();
    expect(again.subnet).toEqual(first.subnet);
    expect(again.etcdLease).not.toBe(first.etcdLease);
    expect(await r.leaseTtl(first)).toBe(-1); // the old etcd lease was revoked
    await r.releaseLease(again);
    const third = await manager(r, 'n1', '198.19.0.0/16', 24, dir).acquire();
    expect(third.subnet).toEqual(first.subnet);
    await import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true }));
  });

  it('gives 30 racing nodes 30 distinct subnets', async () => {
    const prefix = uniquePrefix('race');
    const recs = await Promise.all(Array.from({ length: 30 }, (_, i) => manager(reg(prefix), `n${i}`, '198.19.0.0/24', 29).acquire()));
    const subnets = new Set(recs.map((x) => formatCidr(x.subnet)));
    expect(subnets.size).toBe(30);
    const listing = await reg(prefix).listLeases();
    expect(listing.records.map((x) => x.lease.nodeName).sort()).toEqual(recs.map((x) => x.lease.nodeName).sort());
  });

  it('tells the next node clearly that a full network is full', async () => {
    const r = reg(uniquePrefix('full'));
    for (const n of ['a', 'b', 'c']) await manager(r, n, '198.19.0.0/28', 30).acquire();
    const err = await manager(r, 'd', '198.19.0.0/28', 30).acquire().catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_NETWORK_FULL')).toBe(true);
    expect((err as Error).message).toBe('no free /30 left in 198.19.0.0/28 (3 leased); remove stale leases or widen the network');
  });

  it('names the key of a malformed value, and does not let it crash a listing', async () => {
    const prefix = uniquePrefix('bad');
    const r = reg(prefix);
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'put', `${prefix}/network/config`, '{"network":"198.19.0.0/16","subnetLen":"x"}']);
    await expect(r.getConfig()).rejects.toThrow(`etcd key ${prefix}/network/config: not a valid NetworkConfig`);
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'put', `${prefix}/network/subnets/198.19.3.0-24`, '{"nodeName":"x"']);
    await r.createLease(parseCidr('198.19.1.0/24'), lease('ok'), 30);
    const listing = await r.listLeases();
    expect(listing.records.map((x) => x.lease.nodeName)).toEqual(['ok']);
    expect(listing.invalid.map((x) => x.key)).toEqual([`${prefix}/network/subnets/198.19.3.0-24`]);
    // The subnet under a bad value still counts as taken: of 198.19.0.0/22's
    // three usable /24s, .1 is leased and .3 is bad, so .2 is the last one.
    expect(formatCidr((await manager(r, 'n', '198.19.0.0/22').acquire()).subnet)).toBe('198.19.2.0/24');
    await expect(manager(r, 'm', '198.19.0.0/22').acquire()).rejects.toMatchObject({ code: 'WEFT_NETWORK_FULL' });
  });

  it('stores values etcdctl prints as JSON that the code reads back', async () => {
    const prefix = uniquePrefix('ctl');
    const r = reg(prefix);
    await r.putConfig(config(), false);
    const rec = await manager(r, 'n1').acquire();
    const { stdout } = await run('etcdctl', ['--endpoints', etcdEndpoint(), 'get', '--prefix', prefix]);
    const lines = stdout.trim().split('\n');
    expect(lines).toEqual([`${prefix}/network/config`, '{"network":"198.19.0.0/16","subnetLen":24,"vni":1,"port":4790}', rec.key, expect.stringMatching(/^\{"nodeName":"n1","publicIp":"198.18.0.1",/)]);
    expect(JSON.parse(lines[3]!)).toEqual(lease('n1'));
    // And a value written by etcdctl by hand is read by the code.
    // Another subnet than n1's (allocation is random: 198.19.9.0/24 was n1's about once in 255 runs).
    const hand = formatCidr(rec.subnet) === '198.19.9.0/24' ? '198.19.10.0-24' : '198.19.9.0-24';
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'put', `${prefix}/network/subnets/${hand}`, '{"nodeName":"byhand","publicIp":"198.18.0.9","port":4790,"vni":1}']);
    const names = (await r.listLeases()).records.map((x) => x.lease.nodeName).sort();
    expect(names).toEqual(['byhand', 'n1']);
  });

  it('fails fast with WEFT_ETCD_UNAVAILABLE naming the endpoint when etcd is down', async () => {
    const r = reg(uniquePrefix('down'), 'http://127.0.0.1:1', 1500);
    const t0 = Date.now();
    const err = await r.getConfig().catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_ETCD_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toContain('http://127.0.0.1:1');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
