// What weftd reads of the host without starting a process: the default
// route's interface from /proc/net/route, the interface holding an address,
// an interface's address and MTU over rtnetlink, and the first executable of a name in a list of directories (PATH,
// CNI_PATH). Each checked against the command it replaces where this machine
// has one.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/host/command.js';
import { defaultRouteIn, defaultRouteInterface, interfaceInfo, interfaceWithAddress } from '../../src/host/netconf.js';

const HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT';
const route = (iface: string, dest: string, flags: string, metric: number, mask: string): string => `${iface}\t${dest}\t010200C0\t${flags}\t0\t0\t${metric}\t${mask}\t0\t0\t0`;

describe('defaultRouteIn (/proc/net/route)', () => {
  it('finds the default route among others, the lowest metric of those up', () => {
    const text = [
      HEADER,
      route('eth0', '000200C0', '0001', 0, '00FFFFFF'),
      route('wlan0', '00000000', '0003', 600, '00000000'),
      route('eth1', '00000000', '0003', 100, '00000000'),
      route('down0', '00000000', '0002', 0, '00000000'),
      '',
    ].join('\n');
    expect(defaultRouteIn(text)).toBe('eth1');
  });

  it('is undefined without a default route, or for an empty table', () => {
    expect(defaultRouteIn([HEADER, route('eth0', '000200C0', '0001', 0, '00FFFFFF')].join('\n'))).toBeUndefined();
    expect(defaultRouteIn(`${HEADER}\n`)).toBeUndefined();
    expect(defaultRouteIn('')).toBeUndefined();
  });

  it('agrees with `ip -4 route show default` on this machine', async () => {
    const ip = JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show', 'default'], { encoding: 'utf8' })) as { dev?: string }[];
    expect(await defaultRouteInterface()).toBe(ip[0]?.dev);
  });
});

describe('interfaceWithAddress', () => {
  it('names the interface holding an IPv4 address, and nothing for an address no interface holds', () => {
    expect(interfaceWithAddress('127.0.0.1')).toBe('lo');
    expect(interfaceWithAddress('198.51.100.77')).toBeUndefined();
  });
});

describe('interfaceInfo (rtnetlink)', () => {
  it('agrees with `ip -j -4 addr show` on every interface here with an IPv4 address not of host scope: the first such, and its MTU', () => {
    const links = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show'], { encoding: 'utf8' })) as { ifname: string; mtu: number; addr_info?: { local: string; scope: string }[] }[];
    const withAddress = links.flatMap((l) => {
      const a = l.addr_info?.find((x) => x.scope !== 'host');
      return a ? [{ ifname: l.ifname, ip: a.local, mtu: l.mtu }] : [];
    });
    expect(withAddress.length).toBeGreaterThan(0);
    for (const l of withAddress) expect({ ifname: l.ifname, ...interfaceInfo(l.ifname) }).toEqual(l);
  });

  it('refuses lo, whose only IPv4 address is of host scope, and a missing interface, naming each', () => {
    expect(() => interfaceInfo('lo')).toThrow(expect.objectContaining({ code: 'WEFT_NO_PUBLIC_IP', message: expect.stringContaining('interface lo has no IPv4 address') }));
    expect(() => interfaceInfo('weftnone0')).toThrow(expect.objectContaining({ code: 'WEFT_HOST_SETUP', message: expect.stringContaining('weftnone0') }));
  });
});

describe('findExecutable', () => {
  it('finds an executable in the first directory that has one, not a file without the execute bit, nor a missing one, nor in the working directory for an empty entry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-onpath-'));
    try {
      writeFileSync(join(dir, 'runs'), '#!/bin/sh\n');
      chmodSync(join(dir, 'runs'), 0o755);
      writeFileSync(join(dir, 'plain'), '');
      chmodSync(join(dir, 'plain'), 0o644);
      const path = ['/nonexistent', '', dir, '/bin'];
      expect(findExecutable('runs', path)).toBe(join(dir, 'runs'));
      expect(findExecutable('plain', path)).toBeUndefined();
      expect(findExecutable('missing', path)).toBeUndefined();
      expect(findExecutable('sh', [dir, '/bin'])).toBe('/bin/sh');
      expect(findExecutable('sh', ['/bin', dir])).toBe('/bin/sh');
      // An empty entry is no directory: not the working directory, where this relative name would be found.
      expect(findExecutable(relative(process.cwd(), join(dir, 'runs')), [''])).toBeUndefined();
      expect(findExecutable('runs', [])).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
