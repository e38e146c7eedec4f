// The CNI plugin's pure parts: the subnet file codec, config parsing and its
// error codes, the delegate config, the subnet-change verdict, the installed
// files; and the installed script's VERSION answer against Node's.

import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bridgeConfig } from '../../src/cni/delegate.js';
import { checkInstallOptions, COMPANION_PLUGINS, linkCompanions, renderConflist, renderPluginScript, type InstallOptions } from '../../src/cni/install.js';
import { parseNetConf } from '../../src/cni/netconf.js';
import { CniCode, CniError, readCniEnv, versionInfo } from '../../src/cni/spec.js';
import { stalePods, subnetChangedMessage } from '../../src/cni/subnet_change.js';
import { formatNoSubnet, formatSubnetEnv, parseSubnetEnv, parseSubnetFile } from '../../src/host/subnet_env.js';
import { parseCidr } from '../../src/net/ipv4.js';

/** The built bundle (the source's own URL points into src/ under vitest). */
const PLUGIN_ENTRY = fileURLToPath(new URL('../../dist/cni/plugin.cjs', import.meta.url));

function codeOf(f: () => unknown): number {
  try {
    f();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  throw new Error('did not throw');
}

const env = (over: string) => `FLANNEL_NETWORK=198.19.0.0/16\nFLANNEL_SUBNET=198.19.4.1/24\nFLANNEL_MTU=1464\nFLANNEL_IPMASQ=false\n${over}`;

describe('subnet file', () => {
  it('parses what weftd writes, for any subnet of any network', () => {
    fc.assert(
      fc.property(fc.integer({ min: 8, max: 22 }), fc.integer({ min: 0, max: 6 }), fc.nat(), fc.integer({ min: 576, max: 9000 }), fc.boolean(), (netLen, extra, pick, mtu, ipMasq) => {
        const subLen = netLen + extra + 2;
        const network = parseCidr(`198.0.0.0/${netLen}`, true);
        const index = pick % 2 ** (subLen - netLen);
        const subnet = { base: (network.base + index * 2 ** (32 - subLen)) >>> 0, len: subLen };
        expect(parseSubnetEnv(formatSubnetEnv({ network, subnet, mtu, ipMasq }), 'f')).toEqual({ network, subnet, mtu, ipMasq });
      }),
    );
  });

  it('names the file and the key that is wrong', () => {
    expect(() => parseSubnetEnv(env('').replace('FLANNEL_MTU=1464\n', ''), '/run/x')).toThrow('/run/x: FLANNEL_MTU is missing');
    expect(() => parseSubnetEnv(env('').replace('1464', '12'), 'f')).toThrow('FLANNEL_MTU must be an integer in 576..65535, got "12"');
    expect(() => parseSubnetEnv(env('').replace('198.19.4.1/24', '10.0.0.1/24'), 'f')).toThrow('FLANNEL_SUBNET 10.0.0.0/24 is not a subnet of FLANNEL_NETWORK 198.19.0.0/16');
    expect(() => parseSubnetEnv(env('').replace('198.19.4.1/24', 'banana'), 'f')).toThrow('FLANNEL_SUBNET is not an IPv4 prefix: "banana"');
    expect(() => parseSubnetEnv(env('').replace('false', 'yes'), 'f')).toThrow('FLANNEL_IPMASQ must be true or false');
    expect(() => parseSubnetEnv('garbage', 'f')).toThrow('is not a KEY=VALUE line');
    expect(() => parseSubnetEnv(env('').replace('198.19.4.1/24', '198.19.4.1/31'), 'f')).toThrow('/31 leaves no address for pods');
    expect(parseSubnetEnv(env('# comment\nOTHER=1\n'), 'f').subnet).toEqual(parseCidr('198.19.4.0/24'));
  });

  it('carries the lease expiry as an ISO time, and refuses one that is not', () => {
    const held = { network: parseCidr('198.19.0.0/16'), subnet: parseCidr('198.19.4.0/24'), mtu: 1464, ipMasq: false, leaseExpiresMs: Date.UTC(2026, 11, 7, 18, 30) };
    const text = formatSubnetEnv(held);
    expect(text).toContain('FLANNEL_SUBNET=198.19.4.1/24\n');
    expect(text).toContain('WEFT_LEASE_EXPIRES=2026-12-07T18:30:00.000Z\n');
    expect(parseSubnetFile(text, 'f')).toEqual({ held });
    expect(() => parseSubnetEnv(env('WEFT_LEASE_EXPIRES=soon\n'), 'f')).toThrow('f: WEFT_LEASE_EXPIRES is not an ISO 8601 time, got "soon"');
  });

  it('says when the node holds no subnet, with no FLANNEL_SUBNET for any reader to allocate from', () => {
    const none = { network: parseCidr('198.19.0.0/22'), reason: 'lost 198.19.3.0/24: now leased by node n5 (198.18.0.5); waiting', lost: parseCidr('198.19.3.0/24') };
    const text = formatNoSubnet(none);
    expect(text).not.toMatch(/^FLANNEL_SUBNET=/m);
    expect(parseSubnetFile(text, 'f')).toEqual({ none });
    expect(parseSubnetFile(formatNoSubnet({ network: none.network, reason: 'a\nb' }), 'f')).toEqual({ none: { network: none.network, reason: 'a b' } });
    expect(() => parseSubnetEnv(text, '/run/weft/subnet.env')).toThrow('/run/weft/subnet.env: this node holds no subnet: lost 198.19.3.0/24');
    expect(() => parseSubnetFile(`${env('')}WEFT_NO_SUBNET=x\n`, 'f')).toThrow('f: WEFT_NO_SUBNET and FLANNEL_SUBNET are both set');
  });
});

describe('network config', () => {
  const base = { cniVersion: '1.0.0', name: 'weft', type: 'weft' };

  it('fills weft defaults and keeps what the runtime added', () => {
    const c = parseNetConf(JSON.stringify({ ...base, runtimeConfig: { portMappings: [] }, prevResult: { ips: [] } }));
    expect(c).toMatchObject({ bridge: 'cni0', subnetFile: '/run/weft/subnet.env', dataDir: '/run/weft/cni', ipamDir: '/run/weft/ipam', runtimeConfig: { portMappings: [] }, prevResult: { ips: [] } });
    expect(c.validAttachments).toBeUndefined();
    const gc = parseNetConf(JSON.stringify({ ...base, 'cni.dev/attachments': [{ containerID: 'a', ifname: 'eth0' }] }));
    expect(gc.validAttachments).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
  });

  it('answers bad input with the spec codes and names what is wrong', () => {
    expect(codeOf(() => parseNetConf(''))).toBe(CniCode.Decode);
    expect(codeOf(() => parseNetConf('{"cniVersion":'))).toBe(CniCode.Decode);
    expect(codeOf(() => parseNetConf('[1]'))).toBe(CniCode.Decode);
    expect(codeOf(() => parseNetConf(JSON.stringify({ ...base, cniVersion: '2.0.0' })))).toBe(CniCode.IncompatibleVersion);
    expect(codeOf(() => parseNetConf(JSON.stringify({ ...base, cniVersion: undefined })))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseNetConf(JSON.stringify({ ...base, name: '../x' })))).toBe(CniCode.InvalidConfig);
    expect(() => parseNetConf(JSON.stringify({ ...base, dataDir: 'relative' }))).toThrow('"dataDir" must be an absolute path');
    expect(() => parseNetConf(JSON.stringify({ ...base, bridge: 'a-very-long-bridge' }))).toThrow('"bridge" must be an interface name');
    expect(() => parseNetConf(JSON.stringify({ ...base, 'cni.dev/valid-attachments': [{ containerID: 'a' }] }))).toThrow('[0] needs string containerID and ifname');
  });

  it('reads the environment, refusing unknown verbs and bad CNI_ARGS with code 4', () => {
    const e = readCniEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p', CNI_PATH: '/a::/b' });
    expect(e.args.get('K8S_POD_NAME')).toBe('p');
    expect(e.path).toEqual(['/a', '/b']);
    expect(codeOf(() => readCniEnv({}))).toBe(CniCode.BadEnvironment);
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'FROB' }))).toBe(CniCode.BadEnvironment);
    expect(codeOf(() => readCniEnv({ CNI_COMMAND: 'ADD', CNI_ARGS: 'novalue' }))).toBe(CniCode.BadEnvironment);
  });
});

describe('delegate config', () => {
  it('is bridge + host-local for the node subnet: gateway first address, default route, MTU, no masquerade', () => {
    const conf = parseNetConf(JSON.stringify({ cniVersion: '1.1.0', name: 'n1', bridge: 'br9', ipamDir: '/x/ipam' }));
    const d = bridgeConfig(conf, parseSubnetEnv(env('').replace('1464', '1400').replace('IPMASQ=false', 'IPMASQ=true'), 'f'), true);
    expect(d).toEqual({
      cniVersion: '1.0.0',
      name: 'n1',
      type: 'bridge',
      bridge: 'br9',
      isGateway: true,
      isDefaultGateway: true,
      forceAddress: true,
      ipMasq: false,
      hairpinMode: true,
      mtu: 1400,
      ipam: { type: 'host-local', dataDir: '/x/ipam', ranges: [[{ subnet: '198.19.4.0/24', gateway: '198.19.4.1' }]] },
    });
  });
});

describe('subnet change', () => {
  const current = parseCidr('198.19.9.0/24');
  it('finds the pods outside the current subnet, once each, with the subnet they came from', () => {
    const inUse = [
      { containerId: 'aaa', ifname: 'eth0', ip: '198.19.9.4' },
      { containerId: 'bbb', ifname: 'eth0', ip: '198.19.3.7' },
      { containerId: 'bbb', ifname: 'eth0', ip: '198.19.3.7' },
      { containerId: 'ccc', ifname: 'net1', ip: '198.19.3.8' },
    ];
    const stale = stalePods(current, inUse);
    expect(stale).toEqual([
      { containerId: 'bbb', ifname: 'eth0', ip: '198.19.3.7', subnet: '198.19.3.0/24' },
      { containerId: 'ccc', ifname: 'net1', ip: '198.19.3.8', subnet: '198.19.3.0/24' },
    ]);
    const msg = subnetChangedMessage('cni0', current, stale);
    expect(msg).toContain("the node's subnet is now 198.19.9.0/24");
    expect(msg).toContain('earlier subnet 198.19.3.0/24');
    expect(msg).toContain('Delete those pods');
    expect(stalePods(current, inUse.slice(0, 1))).toEqual([]);
  });
});

describe('installed files', () => {
  const o: InstallOptions = { binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', networkName: 'weft', bridge: 'cni0', subnetFile: '/run/weft/subnet.env', dataDir: '/run/weft/cni', ipamDir: '/run/weft/ipam' };

  it('conflist: weft then portmap, the plugin fields as given, and the plugin accepts it', () => {
    const c = JSON.parse(renderConflist(o));
    expect(c).toMatchObject({ cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft', bridge: 'cni0', subnetFile: '/run/weft/subnet.env' }, { type: 'portmap', capabilities: { portMappings: true } }] });
    expect(parseNetConf(JSON.stringify({ ...c.plugins[0], cniVersion: c.cniVersion, name: c.name })).ipamDir).toBe('/run/weft/ipam');
    expect(() => checkInstallOptions({ ...o, dataDir: 'rel' })).toThrow('--data-dir: the value must be an absolute path');
    expect(() => checkInstallOptions({ ...o, networkName: 'a b' })).toThrow(/--network-name/);
  });

  it('the script answers VERSION as the plugin does, and hands other verbs to Node with the entry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cni-script-'));
    try {
      const script = join(dir, 'weft');
      writeFileSync(script, renderPluginScript(process.execPath, PLUGIN_ENTRY), { mode: 0o755 });
      const viaSh = execFileSync(script, { env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
      const viaNode = execFileSync(process.execPath, [PLUGIN_ENTRY], { env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
      expect(JSON.parse(viaSh)).toEqual(versionInfo());
      expect(viaSh).toBe(viaNode);
      let out = '';
      try {
        execFileSync(script, { env: { CNI_COMMAND: 'ADD' }, input: '', encoding: 'utf8' });
      } catch (err) {
        out = (err as { stdout: string }).stdout;
      }
      expect(JSON.parse(out)).toMatchObject({ code: CniCode.Decode, msg: expect.stringContaining('no network config on stdin') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('companion plugins in the one plugin dir', () => {
  /** A temp dir with `bin/` (the plugin dir) and `src/` (a distribution's plugin dir) holding `names`. */
  function dirs(names: readonly string[]): { root: string; bin: string; src: string } {
    const root = mkdtempSync(join(tmpdir(), 'weft-cni-link-'));
    const bin = join(root, 'bin');
    const src = join(root, 'src');
    mkdirSync(bin);
    mkdirSync(src);
    for (const n of names) writeFileSync(join(src, n), '#!/bin/sh\n', { mode: 0o755 });
    return { root, bin, src };
  }

  it('links every missing one from the first source that has it, then finds them present', () => {
    const { root, bin, src } = dirs(COMPANION_PLUGINS);
    try {
      const first = linkCompanions(bin, ['/nonexistent', src]);
      expect(first.map((c) => c.state)).toEqual(['linked', 'linked', 'linked', 'linked']);
      for (const n of COMPANION_PLUGINS) expect(readlinkSync(join(bin, n))).toBe(join(src, n));
      expect(linkCompanions(bin, [src]).map((c) => c.state)).toEqual(['present', 'present', 'present', 'present']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("leaves the dir's own plugins and files alone, replaces a dangling link, reports what is nowhere", () => {
    const { root, bin, src } = dirs(['bridge', 'portmap', 'loopback']);
    try {
      writeFileSync(join(bin, 'bridge'), 'own', { mode: 0o755 });
      symlinkSync(join(root, 'gone'), join(bin, 'portmap'));
      writeFileSync(join(bin, 'loopback'), 'not executable');
      chmodSync(join(bin, 'loopback'), 0o644);
      const out = linkCompanions(bin, [src]);
      expect(out.find((c) => c.name === 'bridge')).toMatchObject({ state: 'present' });
      expect(lstatSync(join(bin, 'bridge')).isSymbolicLink()).toBe(false);
      expect(out.find((c) => c.name === 'portmap')).toMatchObject({ state: 'linked', target: join(src, 'portmap') });
      expect(out.find((c) => c.name === 'host-local')).toMatchObject({ state: 'missing', searched: [bin, src] });
      expect(out.find((c) => c.name === 'loopback')).toMatchObject({ state: 'missing' });
      expect(lstatSync(join(bin, 'loopback')).isSymbolicLink()).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('installing into the distribution\'s own dir (containerd 1.x on Debian: bin_dir /usr/lib/cni) links nothing', () => {
    const { root, src } = dirs(COMPANION_PLUGINS);
    try {
      expect(linkCompanions(src, [src, `${src}/`]).map((c) => c.state)).toEqual(['present', 'present', 'present', 'present']);
      // A companion the dir lacks is missing, searched for in the dir once: the dir is no source of itself, however spelt.
      rmSync(join(src, 'portmap'));
      expect(linkCompanions(src, [src, `${src}/`]).find((c) => c.name === 'portmap')).toEqual({ name: 'portmap', path: join(src, 'portmap'), state: 'missing', searched: [src] });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

