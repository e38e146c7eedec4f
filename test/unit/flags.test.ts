import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { envName, parseFlags } from '../../src/cli/flags.js';
import { WEFTD_FLAGS, autoQueues, parseDaemonArgs } from '../../src/cli/weftd_flags.js';
import { availableParallelism } from 'node:os';
import { isWeftError } from '../../src/errors.js';
import { commandEnv, runCommand } from '../../src/host/command.js';

function badFlag(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseDaemonArgs(argv, env);
  } catch (err) {
    expect(isWeftError(err, 'WEFT_BAD_FLAG')).toBe(true);
    return (err as Error).message;
  }
  throw new Error(`expected ${argv.join(' ')} to be refused`);
}

describe('weftd flags', () => {
  it('applies defaults', () => {
    const cmd = parseDaemonArgs([], {});
    expect(cmd.kind).toBe('run');
    if (cmd.kind !== 'run') return;
    expect(cmd.options).toMatchObject({ etcdEndpoints: ['http://127.0.0.1:2379'], etcdPrefix: '/weft', engine: 'native', tunName: 'weft0', subnetFile: '/run/weft/subnet.env', leaseTtlS: 86400, offload: true, udpGso: true, udpGro: true });
    expect(cmd.options.queues).toBeGreaterThanOrEqual(1);
    expect(cmd.options.queues).toBeLessThanOrEqual(8);
  });

  it('takes flags in both forms, and WEFT_* variables when the flag is absent', () => {
    const cmd = parseDaemonArgs(['--node-name=a', '--etcd-prefix', '/x/', '--lease-ttl', '60'], { WEFT_NODE_NAME: 'ignored', WEFT_PUBLIC_IP: '198.18.0.7', WEFT_ETCD_ENDPOINTS: 'http://198.18.0.254:2379,http://198.18.0.253:2379' });
    if (cmd.kind !== 'run') throw new Error('not run');
    expect(cmd.options).toMatchObject({ nodeName: 'a', etcdPrefix: '/x', leaseTtlS: 60, publicIp: '198.18.0.7', etcdEndpoints: ['http://198.18.0.254:2379', 'http://198.18.0.253:2379'] });
  });

  it('turns native techniques off one by one, for measurement or old kernels', () => {
    const cmd = parseDaemonArgs(['--offload=false', '--udp-gso=false', '--queues', '3'], { WEFT_UDP_GRO: 'false' });
    if (cmd.kind !== 'run') throw new Error('not run');
    expect(cmd.options).toMatchObject({ offload: false, udpGso: false, udpGro: false, queues: 3 });
    expect(badFlag(['--offload=maybe'])).toBe('--offload: expects true or false, got "maybe"');
    expect(badFlag(['--queues', '0'])).toMatch(/^--queues: expects a whole number from 1 to 64/);
  });

  it('picks the queue count for the machine by default (--queues=auto)', () => {
    expect([1, 2, 3, 4, 8, 16, 64].map(autoQueues)).toEqual([1, 1, 3, 4, 8, 8, 8]);
    for (const argv of [[], ['--queues', 'auto'], ['--queues=auto']]) {
      const cmd = parseDaemonArgs(argv, {});
      if (cmd.kind !== 'run') throw new Error('not run');
      expect(cmd.options.queues).toBe(autoQueues(availableParallelism()));
    }
  });

  it('refuses bad flags with one line naming the flag', () => {
    expect(badFlag(['--bogus'])).toBe('unknown flag --bogus (see --help)');
    expect(badFlag(['--engine', 'turbo'])).toMatch(/^--engine: "turbo"/);
    expect(badFlag(['--public-ip', '1.2.3'])).toMatch(/^--public-ip/);
    expect(badFlag(['--mtu', 'big'])).toMatch(/^--mtu: expects a whole number/);
    expect(badFlag(['--mtu', '100'])).toMatch(/^--mtu/);
    expect(badFlag(['--etcd-endpoints', 'localhost:2379'])).toMatch(/^--etcd-endpoints/);
    const creds = badFlag(['--etcd-endpoints', 'http://root:s3cret@198.18.0.254:2379']);
    expect(creds).toMatch(/^--etcd-endpoints: an endpoint carries credentials \(http:\/\/\*\*\*@198\.18\.0\.254:2379\)/);
    expect(creds).not.toContain('s3cret');
    expect(badFlag(['--tun-name', 'this-name-is-too-long'])).toMatch(/^--tun-name/);
    expect(badFlag(['--log-level', 'loud'])).toMatch(/^--log-level/);
    expect(badFlag(['--node-name'])).toBe('--node-name: needs a value');
    expect(badFlag(['stray'])).toMatch(/unexpected argument "stray"/);
    expect(badFlag([], { WEFT_LEASE_TTL: 'forever' })).toMatch(/^--lease-ttl/);
    for (const m of [badFlag(['--bogus']), badFlag(['--mtu', 'x'])]) expect(m).not.toContain('\n');
  });

  it('names every setting, and only real ones, in the shipped environment file example', () => {
    const text = readFileSync(new URL('../../systemd/weftd.env.example', import.meta.url), 'utf8');
    const names = [...text.matchAll(/^#?(WEFT_[A-Z_]+)=/gm)].map((m) => m[1]);
    const known = new Set(WEFTD_FLAGS.filter((f) => f.env !== false).map((f) => envName(f.name)));
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !known.has(n!))).toEqual([]);
    expect([...known].filter((n) => !names.includes(n))).toEqual([]);
  });

  it('recognizes --help and --version before anything else', () => {
    expect(parseDaemonArgs(['--help', '--engine', 'x'], {}).kind).toBe('help');
    expect(parseDaemonArgs(['--version'], {}).kind).toBe('version');
  });

  it('keeps positionals apart from flags', () => {
    const r = parseFlags(['init', '--force', 'x'], {}, [{ name: 'force', type: 'boolean', help: '' }]);
    expect(r).toEqual({ values: { force: true }, positionals: ['init', 'x'] });
  });
});

describe('host command environment', () => {
  it('passes PATH and the locale to ip, nft and iptables, never the etcd password', () => {
    const env = commandEnv({ PATH: '/usr/bin', LANG: 'C.UTF-8', WEFT_ETCD_PASSWORD: 's3cret', WEFT_ETCD_USERNAME: 'root', HOME: '/root' });
    expect(env).toEqual({ PATH: '/usr/bin', LANG: 'C.UTF-8' });
  });

  it('is what a real child gets', async () => {
    process.env.WEFT_ETCD_PASSWORD = 's3cret';
    try {
      const r = await runCommand('sh', ['-c', 'env']);
      expect(r.stdout).not.toContain('s3cret');
      expect(r.stdout).toContain('PATH=');
    } finally {
      delete process.env.WEFT_ETCD_PASSWORD;
    }
  });
});
