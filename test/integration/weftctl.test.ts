// weftctl against the loopback etcd: init, config, leases, and its errors.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WEFTCTL } from '../lab/cluster.js';
import { type CliResult, runCli } from '../harness/cli.js';
import { etcdEndpoint, uniquePrefix } from '../harness/registry_fixture.js';

function weftctl(prefix: string, args: string[]): Promise<CliResult> {
  return runCli(WEFTCTL, ['--etcd-endpoints', etcdEndpoint(), '--etcd-prefix', prefix, ...args]);
}

describe('weftctl', () => {
  it('inits a config, keeps an equal one, refuses a different one without --force', async () => {
    const p = uniquePrefix('ctl');
    expect((await weftctl(p, ['init', '--network', '198.19.0.0/16'])).stdout).toBe(`${p}/network/config: created (network 198.19.0.0/16, subnets /24, vni 1, port 4790)\n`);
    expect((await weftctl(p, ['init', '--network', '198.19.0.0/16'])).stdout).toMatch(/: unchanged /);
    const conflict = await weftctl(p, ['init', '--network', '198.19.0.0/17']);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/already holds a different config .*pass --force to replace it\n$/);
    expect((await weftctl(p, ['init', '--network', '198.19.0.0/17', '--force'])).stdout).toMatch(/: replaced /);
    expect(JSON.parse((await weftctl(p, ['config'])).stdout)).toEqual({ network: '198.19.0.0/17', subnetLen: 24, vni: 1, port: 4790 });
  });

  it('exits 2 with one line for bad usage', async () => {
    const p = uniquePrefix('ctl');
    for (const [args, msg] of [
      [['init', '--network', '198.19.0.0/16', '--subnet-len', '12'], "weftctl: init: subnetLen 12 must be longer than the network's /16, at most 30, and at most 20 bits longer\n"],
      [['init', '--network', '198.19.1.0/16'], 'weftctl: init: network: "198.19.1.0/16" has host bits set; did you mean 198.19.0.0/16?\n'],
      [['frobnicate'], 'weftctl: unknown command "frobnicate" (init, config, encryption, leases, rotate-key, status, check, cni install)\n'],
      [['init', '--encryption', 'ipsec'], 'weftctl: init: encryption "ipsec" is not one of off, wireguard, wireguard-only\n'],
      [['encryption', 'wireguard', 'now'], 'weftctl: encryption: unexpected argument "now"\n'],
      [['cni'], 'weftctl: cni: expected "cni install"\n'],
      [['cni', 'install', '--bin-dir', '/tmp/x', '--bridge', 'way-too-long-bridge'], 'weftctl: --bridge: the value must be an interface name of at most 15 characters, got "way-too-long-bridge"\n'],
      [['leases', '--vni'], 'weftctl: --vni: needs a value\n'],
      [['check', '--bridge', 'way-too-long-bridge'], 'weftctl: --bridge: must be an interface name of at most 15 characters, got "way-too-long-bridge"\n'],
      [['check', '--probe=maybe'], 'weftctl: --probe: expects true or false, got "maybe"\n'],
    ] as const) {
      const r = await weftctl(p, [...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(msg);
    }
  });

  it('sets the encryption at init and changes it on a running cluster, touching nothing else of the config', async () => {
    const p = uniquePrefix('ctl');
    expect((await weftctl(p, ['init', '--network', '198.19.0.0/16', '--encryption', 'wireguard', '--wireguard-port', '51999'])).stdout).toBe(
      `${p}/network/config: created (network 198.19.0.0/16, subnets /24, vni 1, port 4790, encryption wireguard on port 51999)\n`,
    );
    expect(JSON.parse((await weftctl(p, ['config'])).stdout)).toEqual({ network: '198.19.0.0/16', subnetLen: 24, vni: 1, port: 4790, encryption: 'wireguard', wireguardPort: 51999 });
    expect((await weftctl(p, ['encryption'])).stdout).toBe('wireguard (WireGuard port 51999)\n');
    expect((await weftctl(p, ['encryption', 'wireguard-only'])).stdout).toBe('encryption wireguard-only: changed from wireguard; nodes follow within 5 s\n');
    expect((await weftctl(p, ['encryption', 'wireguard-only'])).stdout).toBe('encryption wireguard-only: unchanged\n');
    expect((await weftctl(p, ['encryption', 'off'])).stdout).toMatch(/changed from wireguard-only/);
    // Off is stored as before the field existed: older readers still take the config.
    expect(JSON.parse((await weftctl(p, ['config'])).stdout)).toEqual({ network: '198.19.0.0/16', subnetLen: 24, vni: 1, port: 4790 });
    const bad = await weftctl(p, ['encryption', 'tls']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('weftctl: encryption "tls" is not one of off, wireguard, wireguard-only\n');
    // The whole config is validated with the new mode: WireGuard on the VXLAN-GPE port is refused, the config left as it was.
    const clash = uniquePrefix('ctl');
    await weftctl(clash, ['init', '--network', '198.19.0.0/16', '--port', '51820']);
    const refused = await weftctl(clash, ['encryption', 'wireguard']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('weftctl: wireguardPort 51820 is the VXLAN-GPE port too: the two need their own ports\n');
    expect((await weftctl(clash, ['encryption'])).stdout).toBe('off\n');
  });

  it('rotate-key finds no weftd without its instance lock, and names the state directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-rotate-'));
    try {
      const r = await weftctl(uniquePrefix('ctl'), ['rotate-key', '--state-dir', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^weftctl: no weftd runs with state directory ${dir} \\(ENOENT on ${dir}/weftd.lock\\); see weftd's --state-dir\n$`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says to run init when there is no config, and lists no leases on an empty prefix', async () => {
    const p = uniquePrefix('ctl');
    const r = await weftctl(p, ['config']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('run: weftctl init');
    expect(JSON.parse((await weftctl(p, ['leases', '--json'])).stdout)).toEqual({ leases: [], invalid: [] });
  });
});

describe('weftctl without the etcd client', () => {
  // Preloaded: importing etcd3 or protobufjs throws. Commands that do not talk to etcd must not load them.
  const DENY = fileURLToPath(new URL('./fixtures/deny_modules.mjs', import.meta.url));
  const denied = (args: string[]): Promise<CliResult> => runCli(WEFTCTL, args, 20_000, ['--import', DENY]);

  it('--help, --version, cni install and status start without etcd3 or protobufjs; leases needs them, check only for etcd', async () => {
    expect((await denied(['--help'])).stdout).toMatch(/^Usage: weftctl/);
    expect((await denied(['--version'])).stdout).toMatch(/^weftctl \d/);
    const dir = mkdtempSync(join(tmpdir(), 'weft-deny-'));
    try {
      const install = await denied(['cni', 'install', '--bin-dir', join(dir, 'bin'), '--conf-dir', join(dir, 'conf')]);
      expect(install.stderr).toBe('');
      expect(install.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const status = await denied(['status', '--metrics-addr', '127.0.0.1:1']);
    expect(status.code).toBe(1);
    expect(status.stderr).not.toContain('denied by the test');
    // check gathers everything else before it loads the client for etcd's part.
    const check = await denied(['check', '--json', '--metrics-addr', '127.0.0.1:1', '--etcd-endpoints', etcdEndpoint()]);
    const report = JSON.parse(check.stdout) as { checks: { name: string; verdict: string; summary: string }[] };
    expect(report.checks.find((k) => k.name === 'weftd')).toMatchObject({ verdict: 'fail', summary: expect.stringContaining('ECONNREFUSED') });
    expect(report.checks.find((k) => k.name === 'etcd')).toMatchObject({ verdict: 'warn', summary: expect.stringContaining('denied by the test: etcd3') });
    const leases = await denied(['--etcd-endpoints', etcdEndpoint(), 'leases']);
    expect(leases.code).toBe(1);
    expect(leases.stderr).toContain('denied by the test: etcd3');
  });
});
