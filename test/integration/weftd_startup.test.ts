// weftd's start-up failures, as an operator sees them: exit status and one
// clear line. Runs against the loopback etcd; fails before touching the host.

import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WEFTD } from '../lab/cluster.js';
import { type CliResult, runCli } from '../harness/cli.js';
import { etcdEndpoint, uniquePrefix } from '../harness/registry_fixture.js';
import { run as runCommand } from '../lab/exec.js';

const run = promisify(execFile);

/** weftd in the root namespace: no metrics listener, so parallel tests never contend for its port. */
function weftd(args: string[]): Promise<CliResult> {
  return runCli(WEFTD, [...args, '--metrics-addr', 'off']);
}

describe('weftd start-up errors', () => {
  it('exits 2 with one line naming a bad flag', async () => {
    for (const [args, reason] of [
      [['--bogus'], 'weftd: unknown flag --bogus (see --help)\n'],
      [['--engine', 'warp'], 'weftd: --engine: "warp" is not one of native, js, kernel\n'],
      [['--lease-ttl', '-5'], 'weftd: --lease-ttl: expects a whole number from 5 to 315360000, got "-5"\n'],
    ] as const) {
      const r = await weftd([...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(reason);
    }
  });

  it('prints help and version', async () => {
    expect((await weftd(['--help'])).stdout).toMatch(/--etcd-endpoints VALUE\s+comma-separated etcd URLs \(default http:\/\/127.0.0.1:2379\) \[WEFT_ETCD_ENDPOINTS\]/);
    expect((await weftd(['--version'])).stdout).toMatch(/^weftd \d+\.\d+\.\d+\n$/);
  });

  it('says to run weftctl init when etcd has no network config', async () => {
    const prefix = uniquePrefix('noconfig');
    const r = await weftd(['--etcd-endpoints', etcdEndpoint(), '--etcd-prefix', prefix, '--public-ip', '198.18.0.1', '--mtu', '1464']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`weftd: no network config at ${prefix}/network/config in etcd ${etcdEndpoint()}; run: weftctl init --network 10.244.0.0/16\n`);
  });

  it('warns when the js engine would run under the unit\'s --jitless, and only then', async () => {
    const prefix = uniquePrefix('jitless');
    const start = (engine: string) =>
      runCommand(process.execPath, ['--jitless', WEFTD, '--engine', engine, '--etcd-endpoints', etcdEndpoint(), '--etcd-prefix', prefix, '--public-ip', '198.18.0.1', '--mtu', '1464', '--metrics-addr', 'off'], { allowFail: true, timeoutMs: 20_000 });
    const js = await start('js');
    expect(js.code).toBe(1); // no network config under this prefix: it stops right after
    expect(js.stdout).toMatch(/"level":40,.*"event":"js_engine_jitless"/);
    const native = await start('native');
    expect(native.code).toBe(1);
    expect(native.stdout).not.toContain('js_engine_jitless');
  });

  it('names the key of a malformed network config', async () => {
    const prefix = uniquePrefix('badconfig');
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'put', `${prefix}/network/config`, '{"network":"198.19.0.0/16","subnetLen":8}']);
    const r = await weftd(['--etcd-endpoints', etcdEndpoint(), '--etcd-prefix', prefix, '--public-ip', '198.18.0.1', '--mtu', '1464']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^weftd: etcd key ${prefix}/network/config: subnetLen 8 must be longer`));
  });

  it('refuses an underlay address no node can have, or one inside the cluster network', async () => {
    const prefix = uniquePrefix('badip');
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'put', `${prefix}/network/config`, '{"network":"198.19.0.0/16","subnetLen":24}']);
    const stateDir = mkdtempSync(join(tmpdir(), 'weft-badip-'));
    try {
      for (const [ip, why] of [['224.0.0.9', 'is a multicast address'], ['198.19.4.4', 'is inside the cluster network 198.19.0.0/16']] as const) {
        const r = await weftd(['--etcd-endpoints', etcdEndpoint(), '--etcd-prefix', prefix, '--public-ip', ip, '--mtu', '1464', '--state-dir', stateDir]);
        expect(r.code, ip).toBe(1);
        expect(r.stderr).toBe(`weftd: the underlay address ${ip} ${why}: give --public-ip (or --iface) an address other nodes reach this node at\n`);
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('refuses a WireGuard key file group or others can read, or that holds no key, with exit 2 naming the path', async () => {
    const prefix = uniquePrefix('badkey');
    await run('etcdctl', ['--endpoints', etcdEndpoint(), 'put', `${prefix}/network/config`, '{"network":"198.19.0.0/16","subnetLen":24}']);
    const stateDir = mkdtempSync(join(tmpdir(), 'weft-badkey-'));
    const key = join(stateDir, 'wireguard.key');
    try {
      for (const [content, mode, why] of [
        [`${Buffer.alloc(32, 9).toString('base64')}\n`, 0o644, 'has mode 0644: group and others must have no access to a private key'],
        [`${Buffer.alloc(32, 9).toString('base64')}\n`, 0o640, 'has mode 0640'],
        ['not a key\n', 0o600, 'does not hold a key'],
      ] as const) {
        writeFileSync(key, content);
        chmodSync(key, mode);
        const r = await weftd(['--etcd-endpoints', etcdEndpoint(), '--etcd-prefix', prefix, '--public-ip', '198.18.0.1', '--mtu', '1464', '--state-dir', stateDir]);
        expect(r.code, why).toBe(2);
        expect(r.stderr).toMatch(new RegExp(`^weftd: WireGuard key file ${key}: ${why}`));
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('retries an unreachable etcd with growing backoff, logging each attempt, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [WEFTD, '--etcd-endpoints', 'http://127.0.0.1:1', '--public-ip', '198.18.0.1', '--mtu', '1464', '--metrics-addr', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 15_000;
      while ((out.match(/"event":"etcd_unavailable"/g) ?? []).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const attempts = out.split('\n').filter((l) => l.includes('"event":"etcd_unavailable"')).map((l) => JSON.parse(l) as { attempt: number; retry_ms: number; err: string });
      expect(attempts.length).toBeGreaterThanOrEqual(3);
      expect(attempts.slice(0, 3).map((a) => a.retry_ms)).toEqual([1000, 2000, 4000]);
      expect(attempts[0]!.err).toContain('http://127.0.0.1:1');
      expect(child.exitCode).toBeNull();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
