// etcd security, against real etcds started here: TLS with client-certificate
// auth (certificates made by openssl at test time) and user/password auth.
// A refusal (untrusted server, no client certificate, wrong password) must
// come back within seconds as one clear line, never as a hang or a retry loop.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdConnection, etcdConnection } from '../../src/cli/etcd_flags.js';
import { systemClock } from '../../src/clock.js';
import { WeftError, isWeftError } from '../../src/errors.js';
import { parseCidr } from '../../src/net/ipv4.js';
import { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import { LeaseWatcher } from '../../src/registry/lease_watcher.js';
import type { SubnetLease } from '../../src/registry/schema.js';
import type { CliResult } from '../harness/cli.js';
import { type EtcdServer, startEtcd } from '../harness/etcd_server.js';
import { captureLogger, config, uniquePrefix } from '../harness/registry_fixture.js';
import { WEFTCTL, WEFTD } from '../lab/cluster.js';

const run = promisify(execFile);
const PASSWORD = 'c0rrect-horse';
const WEFT_PASSWORD = 'weft-pass';

/** Runs a built CLI with extra environment variables (and nothing of WEFT_* from ours). */
async function cli(script: string, args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliResult & { ms: number }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WEFT_')));
  const t0 = Date.now();
  try {
    const r = await run(process.execPath, [script, ...args], { timeout: timeoutMs, env: { ...clean, ...env } });
    return { code: 0, ...r, ms: Date.now() - t0 };
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, ms: Date.now() - t0 };
  }
}

interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing etcd uses. */
  otherCa: string;
  /** A key that belongs to no certificate here. */
  otherKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** A CA, a server certificate for IP 127.0.0.1 and a client certificate signed by it, and an unrelated CA. */
async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-pki-'));
  const p = (f: string): string => join(dir, f);
  const selfSigned = (name: string, cn: string): Promise<void> =>
    openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`]);
  const signed = async (name: string, cn: string, ext: string): Promise<void> => {
    writeFileSync(p(`${name}.ext`), ext);
    await openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  };
  await selfSigned('ca', 'weft test CA');
  await selfSigned('other-ca', 'unrelated test CA');
  await signed('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  await signed('client', 'weft', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.crt'),
    otherKey: p('other-ca.key'),
  };
}

function lease(node: string, ip: string): SubnetLease {
  return { nodeName: node, publicIp: ip, port: 4790, vni: 1, version: 'test', engine: 'js', instance: 'i1' };
}

function flagError(values: Record<string, string>): string {
  try {
    etcdConnection(values);
  } catch (err) {
    expect(isWeftError(err, 'WEFT_BAD_FLAG'), String(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(values)} to be refused`);
}

/** The error a registry call ends with, and how long it took. */
async function failure(conn: EtcdConnection, call: (reg: EtcdRegistry) => Promise<unknown>): Promise<{ err: WeftError; ms: number }> {
  const reg = new EtcdRegistry(conn);
  const t0 = Date.now();
  try {
    await call(reg);
  } catch (err) {
    expect(err).toBeInstanceOf(WeftError);
    return { err: err as WeftError, ms: Date.now() - t0 };
  } finally {
    reg.close();
  }
  throw new Error('expected the call to fail');
}

let pki: Pki;
let tlsEtcd: EtcdServer | undefined;
let authEtcd: EtcdServer | undefined;

beforeAll(async () => {
  pki = await makePki();
  tlsEtcd = await startEtcd({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, clientCertAuth: true, probeCertFile: pki.clientCert, probeKeyFile: pki.clientKey } });
  authEtcd = await startEtcd();
  const ctl = (...args: string[]): Promise<unknown> => run('etcdctl', ['--endpoints', authEtcd!.endpoint, ...args]);
  await ctl('user', 'add', `root:${PASSWORD}`);
  await ctl('--user', `root:${PASSWORD}`, 'user', 'add', `weft:${WEFT_PASSWORD}`);
  await ctl('--user', `root:${PASSWORD}`, 'role', 'add', 'weft');
  await ctl('--user', `root:${PASSWORD}`, 'role', 'grant-permission', 'weft', '--prefix=true', 'readwrite', '/weft-test/');
  await ctl('--user', `root:${PASSWORD}`, 'user', 'grant-role', 'weft', 'weft');
  await ctl('auth', 'enable');
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([tlsEtcd?.stop(), authEtcd?.stop()]);
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('etcd connection flags', () => {
  it('reads the TLS files and the password, and refuses bad usage naming the flag', () => {
    const https = 'https://127.0.0.1:2379';
    const conn = etcdConnection({ 'etcd-endpoints': https, 'etcd-cafile': pki.ca, 'etcd-certfile': pki.clientCert, 'etcd-keyfile': pki.clientKey });
    expect(conn.endpoints).toEqual([https]);
    expect(conn.credentials?.rootCertificate?.toString()).toContain('BEGIN CERTIFICATE');
    expect(conn.credentials?.certChain?.toString()).toContain('BEGIN CERTIFICATE');
    expect(conn.credentials?.privateKey?.toString()).toContain('PRIVATE KEY');
    expect(etcdConnection({ 'etcd-endpoints': https }).credentials).toBeUndefined();
    expect(etcdConnection({ 'etcd-endpoints': https, 'etcd-certfile': pki.clientCert, 'etcd-keyfile': pki.clientKey }).credentials?.rootCertificate).toBeUndefined();

    const pwFile = join(pki.dir, 'password');
    writeFileSync(pwFile, `${PASSWORD}\n`);
    expect(etcdConnection({ 'etcd-username': 'root', 'etcd-password-file': pwFile }).auth).toEqual({ username: 'root', password: PASSWORD });
    expect(etcdConnection({ 'etcd-username': 'root', 'etcd-password': 'x' }).auth).toEqual({ username: 'root', password: 'x' });

    expect(flagError({ 'etcd-cafile': pki.ca })).toBe('--etcd-cafile: needs https:// etcd endpoints (--etcd-endpoints is http://127.0.0.1:2379)');
    expect(flagError({ 'etcd-endpoints': https, 'etcd-certfile': pki.clientCert })).toBe('--etcd-certfile: needs --etcd-keyfile');
    expect(flagError({ 'etcd-endpoints': https, 'etcd-keyfile': pki.clientKey })).toBe('--etcd-keyfile: needs --etcd-certfile');
    expect(flagError({ 'etcd-endpoints': https, 'etcd-cafile': join(pki.dir, 'nope.crt') })).toBe(`--etcd-cafile: cannot read "${join(pki.dir, 'nope.crt')}" (ENOENT)`);
    expect(flagError({ 'etcd-endpoints': https, 'etcd-cafile': pki.clientKey })).toMatch(/^--etcd-cafile: ".*client.key" is not a PEM certificate/);
    expect(flagError({ 'etcd-endpoints': https, 'etcd-certfile': pki.clientCert, 'etcd-keyfile': pki.otherKey })).toMatch(/^--etcd-keyfile: ".*other-ca.key" is not the key of the certificate in .*client.crt$/);
    expect(flagError({ 'etcd-endpoints': `${https},http://127.0.0.1:2380` })).toBe('--etcd-endpoints: mixes http:// and https:// endpoints; use one scheme');
    expect(flagError({ 'etcd-username': 'root' })).toMatch(/^--etcd-username: needs a password: WEFT_ETCD_PASSWORD/);
    expect(flagError({ 'etcd-password': 'x' })).toBe('--etcd-password: needs --etcd-username');
    expect(flagError({ 'etcd-username': 'root', 'etcd-password': 'x', 'etcd-password-file': pwFile })).toMatch(/^--etcd-password-file: conflicts with --etcd-password/);
  });

  it('weftctl exits 2 with one line for bad etcd security flags', async () => {
    const r = await cli(WEFTCTL, ['--etcd-endpoints', 'https://127.0.0.1:2379', '--etcd-certfile', pki.clientCert, 'config']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('weftctl: --etcd-certfile: needs --etcd-keyfile\n');
  });
});

describe('etcd over TLS with client certificates', () => {
  const tlsFlags = (): string[] => ['--etcd-endpoints', tlsEtcd!.endpoint, '--etcd-cafile', pki.ca, '--etcd-certfile', pki.clientCert, '--etcd-keyfile', pki.clientKey];
  const conn = (prefix: string, ca = pki.ca, withClientCert = true): EtcdConnection =>
    etcdConnection({ 'etcd-endpoints': tlsEtcd!.endpoint, 'etcd-prefix': prefix, 'etcd-cafile': ca, ...(withClientCert ? { 'etcd-certfile': pki.clientCert, 'etcd-keyfile': pki.clientKey } : {}) });

  it('weftctl init, config and leases work', async () => {
    const p = uniquePrefix('tls');
    const init = await cli(WEFTCTL, [...tlsFlags(), '--etcd-prefix', p, 'init', '--network', '198.19.0.0/16']);
    expect(init.stderr).toBe('');
    expect(init.stdout).toBe(`${p}/network/config: created (network 198.19.0.0/16, subnets /24, vni 1, port 4790)\n`);
    expect(JSON.parse((await cli(WEFTCTL, [...tlsFlags(), '--etcd-prefix', p, 'config'])).stdout)).toEqual({ network: '198.19.0.0/16', subnetLen: 24, vni: 1, port: 4790 });

    const reg = new EtcdRegistry(conn(p));
    try {
      const rec = await reg.createLease(parseCidr('198.19.7.0/24'), lease('tls-node', '198.18.0.7'), 60);
      expect(rec).toBeDefined();
      expect(await reg.renewLease(rec!)).toBeGreaterThan(0);
    } finally {
      reg.close();
    }
    const leases = await cli(WEFTCTL, [...tlsFlags(), '--etcd-prefix', p, 'leases', '--json']);
    expect(leases.stderr).toBe('');
    expect(JSON.parse(leases.stdout)).toMatchObject({ leases: [{ subnet: '198.19.7.0/24', node: 'tls-node', publicIp: '198.18.0.7' }], invalid: [] });
  });

  it('watches leases over TLS', async () => {
    const p = uniquePrefix('tlswatch');
    const reg = new EtcdRegistry(conn(p));
    try {
      await reg.putConfig(config(), false);
      const listing = await reg.listLeases();
      let seen: (node: string) => void = () => undefined;
      const put = new Promise<string>((resolve) => (seen = resolve));
      const watch = await reg.watchLeases(String(Number(listing.revision) + 1), { onEvent: (ev) => ev.type === 'put' && seen(ev.record.lease.nodeName), onBroken: () => undefined });
      await reg.createLease(parseCidr('198.19.3.0/24'), lease('watched', '198.18.0.3'), 60);
      expect(await put).toBe('watched');
      await watch.cancel();
    } finally {
      reg.close();
    }
  });

  it('without a client certificate: WEFT_ETCD_AUTH saying etcd wants one, at once', async () => {
    const { err, ms } = await failure(conn(uniquePrefix('nocert'), pki.ca, false), (r) => r.getConfig());
    expect(err.code).toBe('WEFT_ETCD_AUTH');
    expect(err.message).toMatch(new RegExp(`^etcd ${tlsEtcd!.endpoint}: get .*: TLS handshake failed: etcd requires a client certificate: give --etcd-certfile and --etcd-keyfile \\(.*certificate.*\\)$`));
    expect(ms).toBeLessThan(10_000);
  });

  it('with a CA that did not sign the server certificate: WEFT_ETCD_AUTH naming the untrusted certificate, at once', async () => {
    const { err, ms } = await failure(conn(uniquePrefix('otherca'), pki.otherCa), (r) => r.listLeases());
    expect(err.code).toBe('WEFT_ETCD_AUTH');
    expect(err.message).toMatch(new RegExp(`^etcd ${tlsEtcd!.endpoint}: list leases: TLS handshake failed: certificate signed by unknown authority: no CA in --etcd-cafile signed the server's certificate \\(.+\\)$`));
    expect(ms).toBeLessThan(10_000);

    // The system CAs (no --etcd-cafile) do not know the test CA either.
    const sys = await failure(etcdConnection({ 'etcd-endpoints': tlsEtcd!.endpoint, 'etcd-certfile': pki.clientCert, 'etcd-keyfile': pki.clientKey }), (r) => r.getConfig());
    expect(sys.err.message).toContain('certificate signed by unknown authority: no CA in the system store (give --etcd-cafile)');

    const ctl = await cli(WEFTCTL, ['--etcd-endpoints', tlsEtcd!.endpoint, '--etcd-cafile', pki.otherCa, '--etcd-certfile', pki.clientCert, '--etcd-keyfile', pki.clientKey, 'leases']);
    expect(ctl.code).toBe(1);
    expect(ctl.stderr).toMatch(/^weftctl: etcd https:\/\/127\.0\.0\.1:\d+: list leases: TLS handshake failed: certificate signed by unknown authority: [^\n]*\n$/);
    expect(ctl.ms).toBeLessThan(10_000);
  });

  it('weftd with an untrusted server certificate exits 1 at once instead of retrying', async () => {
    const r = await cli(
      WEFTD,
      ['--etcd-endpoints', tlsEtcd!.endpoint, '--etcd-cafile', pki.otherCa, '--etcd-certfile', pki.clientCert, '--etcd-keyfile', pki.clientKey, '--public-ip', '198.18.0.1', '--mtu', '1464'],
      { WEFT_METRICS_ADDR: 'off' },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^weftd: etcd https:\/\/127\.0\.0\.1:\d+: get \S+: TLS handshake failed: certificate signed by unknown authority: [^\n]*\n$/);
    expect(r.stdout).not.toContain('etcd_unavailable');
    expect(r.ms).toBeLessThan(10_000);
  });
});

describe('etcd with user/password auth', () => {
  const base = (): string[] => ['--etcd-endpoints', authEtcd!.endpoint];

  it('weftctl works with the right password from WEFT_ETCD_PASSWORD, a password file or the flag', async () => {
    const p = uniquePrefix('auth');
    const init = await cli(WEFTCTL, [...base(), '--etcd-prefix', p, '--etcd-username', 'root', 'init', '--network', '198.19.0.0/16'], { WEFT_ETCD_PASSWORD: PASSWORD });
    expect(init.stderr).toBe('');
    expect(init.stdout).toMatch(/: created /);
    const pwFile = join(pki.dir, 'weft-password');
    writeFileSync(pwFile, `${WEFT_PASSWORD}\n`);
    const shown = await cli(WEFTCTL, [...base(), '--etcd-prefix', p, '--etcd-username', 'weft', '--etcd-password-file', pwFile, 'config']);
    expect(JSON.parse(shown.stdout)).toEqual({ network: '198.19.0.0/16', subnetLen: 24, vni: 1, port: 4790 });
    const leases = await cli(WEFTCTL, [...base(), '--etcd-prefix', p, '--etcd-username', 'root', '--etcd-password', PASSWORD, 'leases', '--json']);
    expect(JSON.parse(leases.stdout)).toEqual({ leases: [], invalid: [] });
  });

  it('a user may lease and renew under its prefix and is refused elsewhere with a clear error', async () => {
    const p = uniquePrefix('authuser');
    const reg = new EtcdRegistry(etcdConnection({ 'etcd-endpoints': authEtcd!.endpoint, 'etcd-prefix': p, 'etcd-username': 'weft', 'etcd-password': WEFT_PASSWORD }));
    try {
      await reg.putConfig(config(), false);
      const rec = await reg.createLease(parseCidr('198.19.9.0/24'), lease('auth-node', '198.18.0.9'), 60);
      expect(await reg.renewLease(rec!)).toBeGreaterThan(0);
      expect((await reg.listLeases()).records.map((r) => r.lease.nodeName)).toEqual(['auth-node']);
    } finally {
      reg.close();
    }
    const { err } = await failure(etcdConnection({ 'etcd-endpoints': authEtcd!.endpoint, 'etcd-prefix': '/elsewhere', 'etcd-username': 'weft', 'etcd-password': WEFT_PASSWORD }), (r) => r.listLeases());
    expect(err.code).toBe('WEFT_ETCD_AUTH');
    expect(err.message).toBe(`etcd ${authEtcd!.endpoint}: list leases: permission denied: user "weft" needs readwrite on the key prefix /elsewhere/`);
  });

  it('a lease watcher whose re-list is refused says so until a listing goes through again', async () => {
    const p = uniquePrefix('watchperm');
    const ctl = (...args: string[]): Promise<unknown> => run('etcdctl', ['--endpoints', authEtcd!.endpoint, '--user', `root:${PASSWORD}`, ...args]);
    const role = `watch-${p.slice(-8)}`;
    await ctl('user', 'add', `${role}:${WEFT_PASSWORD}`);
    await ctl('role', 'add', role);
    await ctl('role', 'grant-permission', role, '--prefix=true', 'readwrite', `${p}/`);
    await ctl('user', 'grant-role', role, role);
    const reg = new EtcdRegistry(etcdConnection({ 'etcd-endpoints': authEtcd!.endpoint, 'etcd-prefix': p, 'etcd-username': role, 'etcd-password': WEFT_PASSWORD }));
    const self = parseCidr('198.19.9.0/24');
    const watcher = new LeaseWatcher({
      registry: reg,
      config: config(),
      self,
      nodeName: 'n9',
      instance: 'i9',
      publicIp: 0,
      log: captureLogger().log,
      resyncIntervalMs: 60_000,
      clock: systemClock,
      events: { onTable: () => undefined, onSelfDeleted: () => undefined, onSelfTaken: () => undefined },
    });
    try {
      await reg.createLease(self, lease('n9', '198.18.0.9'), 60);
      await watcher.start();
      expect(watcher.resyncFailure).toBeUndefined();
      await ctl('role', 'revoke-permission', role, '--prefix=true', `${p}/`);
      watcher.resyncNow('test: permission revoked');
      for (let t = Date.now(); watcher.resyncFailure === undefined; ) {
        if (Date.now() - t > 10_000) throw new Error('the failing re-list was never reported');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(watcher.resyncFailure).toContain('permission denied');
      await ctl('role', 'grant-permission', role, '--prefix=true', 'readwrite', `${p}/`);
      for (let t = Date.now(); watcher.resyncFailure !== undefined; ) {
        if (Date.now() - t > 40_000) throw new Error('the re-list never recovered');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await watcher.close();
      reg.close();
    }
  }, 60_000);

  it('a wrong password or none: weftctl exits 1 with one line, within seconds', async () => {
    const p = uniquePrefix('authbad');
    const wrong = await cli(WEFTCTL, [...base(), '--etcd-prefix', p, '--etcd-username', 'root', 'config'], { WEFT_ETCD_PASSWORD: 'wrong' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe(`weftctl: etcd ${authEtcd!.endpoint}: get ${p}/network/config: authentication failed: invalid user name or password (user "root")\n`);
    expect(wrong.ms).toBeLessThan(5_000);

    const none = await cli(WEFTCTL, [...base(), '--etcd-prefix', p, 'leases']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(`weftctl: etcd ${authEtcd!.endpoint}: list leases: authentication failed: etcd has auth enabled; give --etcd-username and a password (WEFT_ETCD_PASSWORD)\n`);

    const { err, ms } = await failure(etcdConnection({ 'etcd-endpoints': authEtcd!.endpoint, 'etcd-username': 'nobody', 'etcd-password': 'x' }), (r) => r.ping());
    expect(err.code).toBe('WEFT_ETCD_AUTH');
    expect(ms).toBeLessThan(5_000);
  });

  it('weftd with a wrong password exits 1 at once with the reason', async () => {
    const p = uniquePrefix('authd');
    const r = await cli(WEFTD, [...base(), '--etcd-prefix', p, '--etcd-username', 'root', '--public-ip', '198.18.0.1', '--mtu', '1464'], { WEFT_ETCD_PASSWORD: 'wrong', WEFT_METRICS_ADDR: 'off' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`weftd: etcd ${authEtcd!.endpoint}: get ${p}/network/config: authentication failed: invalid user name or password (user "root")\n`);
    expect(r.stdout).not.toContain('etcd_unavailable');
    expect(r.ms).toBeLessThan(5_000);
  });
});
