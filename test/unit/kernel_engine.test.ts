// The kernel engine's pure parts: the route diff (by property), the MTU
// check against the kernel's GPE headroom, counters that survive a source
// starting again from zero, the filter's nft script and the iptables
// counters' parser, the refusal's exit status and the flag; and a start
// whose device is gone.

import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../src/cli/main.js';
import { parseDaemonArgs } from '../../src/cli/weftd_flags.js';
import { systemClock } from '../../src/clock.js';
import { KernelEngine, MonotonicCounters } from '../../src/dataplane/kernel_engine.js';
import { WeftError, isWeftError } from '../../src/errors.js';
import { type EncapTarget, encapChanges } from '../../src/host/encap_routes.js';
import { kernelFilterNftScript, nftNodesScript, parseIptCounters } from '../../src/host/kernel_filter.js';
import { type VxlanDevice, mtuProblem } from '../../src/host/vxlan_device.js';
import { parseCidr, parseIp } from '../../src/net/ipv4.js';
import { RouteTable } from '../../src/routes/route_table.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';

describe('the kernel engine\'s route diff', () => {
  const target = fc.record({ remote: fc.integer({ min: 1, max: 8 }), vni: fc.integer({ min: 1, max: 2 }) });
  const routes = fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), target)).map((kv) => new Map<number, EncapTarget>(kv));

  it('turns any installed set into the wanted one, touching only subnets that differ', () => {
    fc.assert(
      fc.property(routes, routes, (installed, want) => {
        const { put, remove } = encapChanges(installed, want);
        const after = new Map(installed);
        for (const b of remove) after.delete(b);
        for (const b of put) after.set(b, want.get(b)!);
        expect(after).toEqual(want);
        for (const b of put) expect(installed.get(b)).not.toEqual(want.get(b));
        for (const b of remove) expect(want.has(b)).toBe(false);
      }),
    );
  });

  it('changes nothing for an equal table', () => {
    const m = new Map([[1, { remote: 2, vni: 1 }]]);
    expect(encapChanges(m, new Map(m))).toEqual({ put: [], remove: [] });
  });
});

describe('the device MTU against the kernel\'s VXLAN-GPE headroom', () => {
  it('fits underlay - 36 on a kernel with the GPE header fix, and says what to give otherwise', () => {
    expect(mtuProblem(1464, 1500, 36)).toBeUndefined();
    expect(mtuProblem(8964, 9000, 36)).toBeUndefined();
    expect(mtuProblem(1480, 1500, 36)).toMatch(/give --mtu 1464 or less$/);
  });

  it('refuses underlay - 36 on a kernel without it (50 bytes reckoned), naming the fix and --mtu underlay - 50', () => {
    expect(mtuProblem(1464, 1500, 50)).toMatch(/lacks 94d166c5318c .*give --mtu 1450 \(pods get that MTU\) or --engine native$/);
    expect(mtuProblem(1450, 1500, 50)).toBeUndefined();
  });
});

describe('counters over sources that start again from zero', () => {
  it('only grow: a value below the last read is a restart, and what was counted is kept', () => {
    const m = new MonotonicCounters(2);
    expect(m.read([5, 1])).toEqual([5, 1]);
    expect(m.read([7, 1])).toEqual([7, 1]);
    expect(m.read([2, 3])).toEqual([9, 3]);
    expect(m.read([4, 3])).toEqual([11, 3]);
  });
});

describe('the kernel engine\'s start', () => {
  it('refuses a device gone before it started with WEFT_HOST_SETUP naming the device', async () => {
    const device = { name: 'weft0', protocol: 99, link: () => undefined } as unknown as VxlanDevice;
    const cfg = { self: parseCidr('198.19.1.0/24'), tunAddr: parseIp('198.19.1.0'), vni: 1, port: 4790, bindIp: parseIp('127.0.0.1'), mtu: 1464, wireguard: { privateKey: generateKeyPair().privateKey, port: 51820 }, clock: systemClock };
    const engine = new KernelEngine(cfg, { device, log: pino({ level: 'silent' }) }, RouteTable.empty(parseCidr('198.19.0.0/16'), 24));
    const err = await engine.start().catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_HOST_SETUP')).toBe(true);
    expect((err as WeftError).details).toEqual({ device: 'weft0' });
    expect((err as Error).message).toBe("the kernel engine's device weft0 is gone before the engine started");
  });
});

describe('the kernel engine\'s filter', () => {
  const spec = { device: 'weft0', port: 4790, vni: 7, network: parseCidr('198.19.0.0/16'), subnet: parseCidr('198.19.5.0/24') };

  it('replaces table ip weft_kernel in one nft transaction: the header and sender on input, inner source and destination on the device, net-unreachable counted on output', () => {
    const script = kernelFilterNftScript(spec, [parseIp('198.18.0.2'), parseIp('198.18.0.3')]);
    expect(script.split('\n').slice(0, 3)).toEqual(['add table ip weft_kernel', 'delete table ip weft_kernel', 'table ip weft_kernel {']);
    expect(script).toContain('    elements = { 198.18.0.2, 198.18.0.3 }');
    expect(script).toContain('    udp dport 4790 @th,96,24 != 7 counter name "outside_drop_vni" drop');
    expect(script).toContain('    udp dport 4790 ip saddr != @nodes counter name "outside_drop_unknown_sender" drop');
    expect(script).toContain('    iifname "weft0" ip saddr != 198.19.0.0/16 ip saddr != @nodes counter name "outside_drop_spoofed_source" drop');
    expect(script).toContain('    iifname "weft0" ip daddr != 198.19.5.0/24 counter name "outside_drop_not_local" drop');
    expect(script).toContain('    iifname "weft0" ip daddr 198.19.5.255 counter name "outside_drop_not_local" drop');
    expect(script).toContain('@th,192,32 & 0xffff0000 == 0xc6130000 counter name "inside_icmp_unreachable"');
    expect(kernelFilterNftScript(spec, [])).not.toContain('elements');
  });

  it('changes the node set in one transaction by its difference, or refills it whole', () => {
    const ip = (d: number): number => parseIp(`198.18.0.${d}`);
    expect(nftNodesScript([ip(1), ip(3), ip(4)], [ip(1), ip(2), ip(3)])).toBe('delete element ip weft_kernel nodes { 198.18.0.2 }\nadd element ip weft_kernel nodes { 198.18.0.4 }\n');
    expect(nftNodesScript([ip(1)], [ip(1)])).toBe('');
    expect(nftNodesScript([ip(9)])).toBe('flush set ip weft_kernel nodes\nadd element ip weft_kernel nodes { 198.18.0.9 }\n');
    expect(nftNodesScript([])).toBe('flush set ip weft_kernel nodes\n');
  });

  it('sums iptables-save -c counts by the counter each rule names, and nothing of anybody else\'s', () => {
    const save = [
      '[12:960] -A WEFT-KERNEL-IN -m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x0:0x6,0x8:0xffffff" -m comment --comment outside_drop_vni -j DROP',
      '[3:252] -A WEFT-KERNEL-DECAP ! -d 198.19.5.0/24 -m comment --comment outside_drop_not_local -j DROP',
      '[4:336] -A WEFT-KERNEL-DECAP -d 198.19.5.255/32 -m comment --comment outside_drop_not_local -j DROP',
      '[9:9] -A INPUT -m comment --comment outside_drop_vni -j DROP',
      '[0:0] -A WEFT-KERNEL-NODES -s 198.18.0.2/32 -j RETURN',
    ].join('\n');
    expect(parseIptCounters(save)).toEqual(new Map([['outside_drop_vni', 12], ['outside_drop_not_local', 7]]));
  });
});

describe('--engine kernel on the command line', () => {
  it('is an engine, by flag or WEFT_ENGINE', () => {
    expect(parseDaemonArgs(['--engine', 'kernel'], {})).toMatchObject({ kind: 'run', options: { engine: 'kernel' } });
    expect(parseDaemonArgs([], { WEFT_ENGINE: 'kernel' })).toMatchObject({ kind: 'run', options: { engine: 'kernel' } });
  });

  it('exits 2 when the node cannot run it, as for a bad flag', () => {
    expect(exitCodeFor(new WeftError('WEFT_ENGINE_REFUSED', '--engine kernel: ...'))).toBe(2);
    expect(exitCodeFor(new WeftError('WEFT_HOST_SETUP', 'x'))).toBe(1);
  });
});
