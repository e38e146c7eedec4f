// The Debian package on this machine, then its unit under a real systemd: build it (build/deb.mjs,
// as npm run package does), check it with lintian, dpkg -i it, run a lab node from the installed
// weftd, verify the installed unit, boot a systemd container (test/lab/nspawn.ts) in a lab node that
// uses the installed package (/usr is this machine's) and drive weftd.service there, then dpkg -r
// (the conffile stays) and dpkg -P (nothing stays). Installing starts nothing and touches no network
// outside the lab. The package is purged on every path, so the machine is left as it was found.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rootSkipReason } from '../harness/privilege.js';
import { until } from '../harness/until.js';
import { run, sleep } from '../lab/exec.js';
import { PREFIX, WEFTD, WeftCluster } from '../lab/cluster.js';
import { NodeContainer } from '../lab/nspawn.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const DOCS = join(ROOT, 'docs/install.md');
const UNIT = '/usr/lib/systemd/system/weftd.service';
const ENV_FILE = '/etc/weft/weftd.env';
/** What weft's maintainer scripts and the unit make besides the package's own files. */
const MADE_BY_WEFT = ['/etc/weft', '/var/lib/weft', '/run/weft', '/var/lib/systemd/deb-systemd-helper-enabled/weftd.service.dsh-also', '/etc/systemd/system/multi-user.target.wants/weftd.service'];
/**
 * Written before this test installs weft and removed once it is purged: a run killed in between
 * (a stopped CI job, a cut session) leaves it beside a weft in whatever state dpkg was in, which the
 * next run purges as its own. A weft without it is somebody else's, and is never touched.
 */
const OWNED_MARK = '/var/lib/weft-package-test.owned';

/** Runs dpkg, waiting out another process's hold on its lock (other work on this machine installs packages too). */
async function dpkg(args: string[]): Promise<string> {
  let last = '';
  return until(
    () => `dpkg ${args.join(' ')} to get its lock: ${last}`,
    async () => {
      const r = await run('dpkg', args, { timeoutMs: 120_000, allowFail: true, env: { DEBIAN_FRONTEND: 'noninteractive' } });
      if (r.code === 0) return r.stdout;
      last = `exit ${r.code}: ${r.stderr.trim()}`;
      if (!/lock/i.test(r.stderr)) throw new Error(`dpkg ${args.join(' ')}: ${last}`);
      return false;
    },
    120_000,
    2000,
  );
}

async function status(): Promise<string> {
  return (await run('dpkg-query', ['-W', '-f', '${Status}', 'weft'], { allowFail: true })).stdout;
}

/** What weft may have done to this network namespace: its links, nftables tables and iptables chains. */
async function weftNetworkState(): Promise<string[]> {
  const links = (JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => `link ${l.ifname}`);
  const tables = (await run('nft', ['list', 'tables'])).stdout.split('\n').map((t) => `nft ${t}`);
  const chains = (await run('iptables-save', [], { allowFail: true })).stdout.split('\n').map((c) => `iptables ${c}`);
  return [...links, ...tables, ...chains].filter((x) => /weft/i.test(x));
}

/** Processes running a weft program. */
function weftProcesses(): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /\/usr\/(lib\/weft|bin\/weftd)/.test(l));
}

describe.skipIf(rootSkipReason())('the Debian package (needs root: dpkg, network namespaces, systemd-nspawn)', () => {
  let dir: string;
  let deb: string;
  let packaged: string[];
  const existedBefore = new Map<string, boolean>();
  let c: WeftCluster;
  /** Set before dpkg -i runs: from then on, whatever happens, the package is purged at the end. */
  let installed = false;

  beforeAll(async () => {
    if (existsSync(OWNED_MARK)) {
      if ((await status()) !== '') await dpkg(['--purge', 'weft']);
      rmSync(OWNED_MARK);
    }
    if ((await status()) !== '') throw new Error(`weft is on this machine (${await status()}), not installed by this test; it installs and purges its own: dpkg -P weft first`);
    dir = mkdtempSync(join(tmpdir(), 'weft-deb-test-'));
    deb = (await run(process.execPath, [join(ROOT, 'build/deb.mjs'), '--out', dir], { timeoutMs: 120_000 })).stdout.trim();
    packaged = (await run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -t', 'sh', deb], { timeoutMs: 30_000 })).stdout
      .split('\n')
      .filter((p) => p !== '' && p !== './')
      .map((p) => p.replace(/^\./, '').replace(/\/$/, ''));
    for (const p of [...packaged, ...MADE_BY_WEFT]) existedBefore.set(p, existsSync(p));
    c = await WeftCluster.create({ nodes: 2, podsPerNode: 0, name: 'package', startNodes: false, bin: (i) => (i === 2 ? '/usr/bin/weftd' : WEFTD) });
  }, 180_000);

  afterAll(async () => {
    await c?.destroy();
    try {
      if (installed && (await status()) !== '') await dpkg(['--purge', 'weft']);
      if (installed) rmSync(OWNED_MARK, { force: true });
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('is a package lintian finds no error in, whose every warning docs/install.md names', async () => {
    const info = (await run('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(deb.endsWith(`/weft_${version}_amd64.deb`)).toBe(true);
    expect(info).toContain(`Version: ${version}`);
    const depends = /^Depends: (.*)$/m.exec(info)![1]!.split(', ');
    expect(depends).toEqual(expect.arrayContaining(['nodejs (>= 20)', 'iproute2', 'nftables | iptables', 'containernetworking-plugins']));
    expect(depends.some((d) => d.startsWith('libc6'))).toBe(true);
    expect((await run('dpkg-deb', ['--info', deb, 'conffiles'])).stdout.trim()).toBe(ENV_FILE);

    const lintian = await run('lintian', ['--display-level', '>=warning', deb], { timeoutMs: 120_000, allowFail: true });
    const tags = lintian.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
    expect(tags.filter((l) => l.startsWith('E: '))).toEqual([]);
    const docs = readFileSync(DOCS, 'utf8');
    const warnings = [...new Set(tags.map((l) => /^W: weft: (\S+)/.exec(l)![1]!))];
    expect(warnings.filter((w) => !docs.includes(`\`${w}\``))).toEqual([]);
  }, 120_000);

  it('installs with dpkg -i: weftd and weftctl on PATH, the unit, the conffile, the CNI plugin and the directories; starting nothing, touching no network', async () => {
    const networkBefore = await weftNetworkState();
    expect(weftProcesses()).toEqual([]);
    writeFileSync(OWNED_MARK, `weft ${deb}, installed by test/e2e/package.test.ts (pid ${process.pid}) at ${new Date().toISOString()}\n`);
    installed = true;
    await dpkg(['--install', deb]);
    expect(await status()).toBe('install ok installed');

    expect((await run('weftd', ['--version'])).stdout).toBe(`weftd ${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`);
    expect((await run('weftctl', ['--version'])).stdout).toMatch(/^weftctl \d+\.\d+\.\d+\n$/);
    expect(readFileSync(UNIT, 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/weftd$/m);
    expect(statSync(ENV_FILE).mode & 0o777).toBe(0o600);
    const plugin = await run('/usr/lib/cni/weft', [], { env: { CNI_COMMAND: 'VERSION' } });
    expect(JSON.parse(plugin.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.0.0']) });
    expect(readFileSync('/usr/lib/cni/weft', 'utf8')).toContain("exec '/usr/bin/node' '/usr/lib/weft/dist/cni/plugin.cjs'");
    for (const d of ['/var/lib/weft', '/run/weft']) expect(statSync(d).isDirectory(), d).toBe(true);
    // Production dependencies only, and no sources or build leftovers.
    expect(existsSync('/usr/lib/weft/node_modules/etcd3')).toBe(true);
    for (const dev of ['vitest', 'typescript', 'esbuild', 'tsx', 'node-gyp']) expect(existsSync(`/usr/lib/weft/node_modules/${dev}`), dev).toBe(false);
    expect(existsSync('/usr/lib/weft/src')).toBe(false);
    expect(existsSync('/usr/lib/weft/native/build/Release/weft_test.node')).toBe(false);

    expect(weftProcesses()).toEqual([]);
    expect(await weftNetworkState()).toEqual(networkBefore);
  }, 180_000);

  it('runs a lab node from the installed weftd, with the agent\'s Node flags, meeting a node on this tree\'s', async () => {
    const [a, b] = [await c.startNode(1, 1), await c.startNode(2, 1)];
    const argv = readFileSync(`/proc/${b.weftd!.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(0, 2)).toEqual(['node', '--max-semi-space-size=1']);
    expect(argv).toContain('/usr/bin/weftd');
    // What the checks for no weft process find absent: the installed weftd's line, by its pid.
    expect(weftProcesses().map((l) => l.trim().split(/\s+/)[0])).toContain(String(b.weftd!.pid));
    expect(await c.lab.ping(a.pods[0]!, c.lab.podIp(b.pods[0]!))).toBe(true);
    expect(await c.lab.ping(b.pods[0]!, c.lab.podIp(a.pods[0]!))).toBe(true);
    const leases = (await c.lab.exec(c.lab.nodeNs(2), ['weftctl', '--etcd-endpoints', c.lab.etcdEndpoint, '--etcd-prefix', PREFIX, 'leases'])).stdout;
    expect(leases).toContain('node1');
    expect(leases).toContain('node2');
    expect((await c.stopNode(2)).code).toBe(0);
  }, 90_000);

  it('has a unit systemd-analyze verify accepts as installed (its man page included)', async () => {
    const r = await run('systemd-analyze', ['verify', UNIT], { timeoutMs: 30_000, allowFail: true });
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.includes('weftd'))).toEqual([]);
  });

  describe('weftd.service under systemd 252 as PID 1 (systemd-nspawn in lab node 3)', () => {
    let ct: NodeContainer;
    let etcWeft: string;
    const inCt = async (argv: string[]): Promise<{ code: number; out: string }> => {
      const r = await ct.exec(argv, { allowFail: true });
      return { code: r.code, out: r.stdout + r.stderr };
    };
    const show = async (...props: string[]): Promise<Record<string, string>> =>
      Object.fromEntries((await inCt(['systemctl', 'show', 'weftd', ...props.map((p) => `--property=${p}`)])).out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const lease = async (): Promise<string> => c.lab.etcdctl(['get', '--prefix', '--print-value-only', `${PREFIX}/network/subnets/`]);
    const ns = (): string => c.lab.nodeNs(3);

    beforeAll(async () => {
      await c.lab.addNode();
      etcWeft = join(dir, 'etc-weft');
      mkdirSync(etcWeft, { recursive: true });
      // The package's settings, pointed at the lab.
      writeFileSync(join(etcWeft, 'weftd.env'), `${readFileSync(ENV_FILE, 'utf8')}\nWEFT_ETCD_ENDPOINTS=${c.lab.etcdEndpoint}\nWEFT_ETCD_PREFIX=${PREFIX}\nWEFT_IFACE=eth0\nWEFT_NODE_NAME=node3\n`, { mode: 0o600 });
      // Nothing of the OS's own enabled (a volatile boot enables by preset); a watchdog the test can wait for.
      writeFileSync(join(dir, 'preset'), 'disable *\n');
      mkdirSync(join(dir, 'weftd.service.d'));
      writeFileSync(join(dir, 'weftd.service.d/test.conf'), '[Service]\nWatchdogSec=4\n');
      ct = await NodeContainer.boot(c.lab, 3, {
        binds: [
          { from: etcWeft, to: '/etc/weft' },
          { from: join(dir, 'preset'), to: '/etc/systemd/system-preset/00-weft-test.preset', readOnly: true },
          { from: join(dir, 'weftd.service.d'), to: '/etc/systemd/system/weftd.service.d', readOnly: true },
        ],
      });
    }, 90_000);

    it('systemctl start returns once the lease is held (Type=notify), and status shows weftd\'s STATUS line', async () => {
      expect(await lease()).not.toContain('"nodeName":"node3"');
      const started = await inCt(['systemctl', 'start', 'weftd']);
      expect(started).toEqual({ code: 0, out: '' });
      // No waiting: with notify, start returned after READY=1, so the lease and the subnet file are there.
      expect(await lease()).toContain('"nodeName":"node3"');
      expect((await inCt(['cat', '/run/weft/subnet.env'])).out).toMatch(/^FLANNEL_SUBNET=198\.19\./m);
      expect(await show('ActiveState', 'SubState', 'Type')).toEqual({ ActiveState: 'active', SubState: 'running', Type: 'notify' });
      const st = await inCt(['systemctl', 'status', '--no-pager', 'weftd']);
      expect(st.out).toMatch(/Status: "forwarding for 198\.19\.\d+\.0\/24, \d+ peers"/);
      expect(st.out).toMatch(/node --max-semi-space-size=1 --v8-pool-size=1 --jitless --no-expose-wasm \/usr\/bin\/weftd/);
    }, 60_000);

    it('holds its hardening: only CAP_NET_ADMIN, no new privileges, and nothing writable outside /run/weft and /var/lib/weft', async () => {
      const pid = (await show('MainPID')).MainPID!;
      const proc = (await inCt(['cat', `/proc/${pid}/status`])).out;
      expect(/^CapEff:\s+(\w+)$/m.exec(proc)![1]).toBe('0000000000001000');
      expect(/^CapBnd:\s+(\w+)$/m.exec(proc)![1]).toBe('0000000000001000');
      expect(/^NoNewPrivs:\s+(\d)$/m.exec(proc)![1]).toBe('1');
      // Writes from inside weftd's own mount namespace, as root: the unit's read-only and hidden paths refuse them.
      const probe = 'for p in "$@"; do if (echo x > "$p") 2>/dev/null; then echo "$p written"; rm -f "$p"; else echo "$p refused"; fi; done';
      const paths = ['/etc/weft-probe', '/usr/weft-probe', '/var/weft-probe', '/var/lib/weft-probe', '/root/weft-probe', '/home/weft-probe', '/proc/sys/kernel/domainname', '/run/weft/probe', '/var/lib/weft/probe'];
      const r = await inCt(['nsenter', '--target', pid, '--mount', '--', 'sh', '-c', probe, 'sh', ...paths]);
      expect(r.out.trim().split('\n')).toEqual([...paths.slice(0, -2).map((p) => `${p} refused`), '/run/weft/probe written', '/var/lib/weft/probe written']);
    }, 30_000);

    it('systemctl stop removes the TUN and the encapsulation filter, and keeps the lease', async () => {
      expect((await c.lab.exec(ns(), ['ip', 'link', 'show', 'weft0'], { allowFail: true })).code).toBe(0);
      expect((await c.lab.exec(ns(), ['nft', 'list', 'tables'])).stdout).toContain('table ip weft_encap');
      expect(await inCt(['systemctl', 'stop', 'weftd'])).toEqual({ code: 0, out: '' });
      expect((await show('ActiveState')).ActiveState).toBe('inactive');
      expect((await c.lab.exec(ns(), ['ip', 'link', 'show', 'weft0'], { allowFail: true })).code).not.toBe(0);
      expect((await c.lab.exec(ns(), ['nft', 'list', 'tables'])).stdout).not.toContain('weft');
      expect(await lease()).toContain('"nodeName":"node3"');
    }, 30_000);

    it('a frozen weftd (SIGSTOP) is killed by the watchdog and restarted', async () => {
      expect((await inCt(['systemctl', 'start', 'weftd'])).code).toBe(0);
      const before = await show('MainPID', 'NRestarts', 'WatchdogUSec');
      expect(before.WatchdogUSec).toBe('4s');
      expect((await inCt(['kill', '-STOP', before.MainPID!])).code).toBe(0);
      // 4 s without WATCHDOG=1, then SIGABRT (systemd sends SIGCONT after it), RestartSec=2, a start.
      const restarts = String(Number(before.NRestarts) + 1);
      let after = before;
      await until(
        () => `weftd restarted by the watchdog (now ${JSON.stringify(after)})`,
        async () => {
          after = await show('MainPID', 'NRestarts', 'ActiveState');
          return after.NRestarts === restarts && after.ActiveState === 'active';
        },
        30_000,
        500,
      );
      expect(after.MainPID).not.toBe(before.MainPID);
      expect((await inCt(['journalctl', '-u', 'weftd', '--no-pager', '-o', 'cat'])).out).toContain('Watchdog timeout');
    }, 60_000);

    it('exit status 2 (a bad setting) is not restarted', async () => {
      writeFileSync(join(etcWeft, 'weftd.env'), `${readFileSync(join(etcWeft, 'weftd.env'), 'utf8')}WEFT_ENGINE=bogus\n`);
      const r = await inCt(['systemctl', 'restart', 'weftd']);
      expect(r.code).not.toBe(0);
      // Past RestartSec=2: still failed, not restarted (a restart by hand counts from 0 again; one by systemd would be 1).
      await sleep(3500);
      expect(await show('ActiveState', 'Result', 'ExecMainStatus', 'NRestarts')).toEqual({ ActiveState: 'failed', Result: 'exit-code', ExecMainStatus: '2', NRestarts: '0' });
      expect((await inCt(['journalctl', '-u', 'weftd', '--no-pager', '-o', 'cat'])).out).toContain('weftd: --engine: ');
    }, 30_000);

    afterAll(async () => {
      await ct?.destroy();
    }, 60_000);
  });

  it('dpkg -r removes weft but keeps the conffile as the admin left it', async () => {
    writeFileSync(ENV_FILE, `${readFileSync(ENV_FILE, 'utf8')}# edited by the package test\n`);
    // Enabled as an admin would; the purge must take the link away too.
    await run('systemctl', ['enable', 'weftd']);
    await dpkg(['--remove', 'weft']);
    expect(await status()).toBe('deinstall ok config-files');
    expect(readFileSync(ENV_FILE, 'utf8')).toContain('# edited by the package test');
    for (const p of ['/usr/lib/weft', '/usr/bin/weftd', '/usr/bin/weftctl', UNIT, '/usr/lib/cni/weft']) expect(existsSync(p), p).toBe(false);
  }, 120_000);

  it('dpkg -P leaves nothing of weft behind', async () => {
    await dpkg(['--purge', 'weft']);
    expect(await status()).toBe('');
    const left = [...existedBefore].filter(([p, was]) => !was && existsSync(p)).map(([p]) => p);
    expect(left).toEqual([]);
    expect((await run('sh', ['-c', 'ls /var/lib/dpkg/info/weft.* 2>/dev/null || true'])).stdout).toBe('');
  }, 120_000);
});
