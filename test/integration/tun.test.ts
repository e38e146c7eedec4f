// The TUN addon and KernelTun: argument checks and batch reads without
// privileges (over a FIFO), then a real TUN device inside a test-owned
// network namespace (root only) answering ping.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/host/addon.js';
import { acceptLocalRequest, rtnlSteps } from '../../src/host/rtnetlink.js';
import { loadTestAddon } from '../harness/test_addon.js';
import { until } from '../harness/until.js';
import { type ExecResult, run as runCommand } from '../lab/exec.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/tun_echo.ts', import.meta.url));

/** Runs a command to completion, SIGKILLed after timeoutMs; a non-zero exit is a result, a timeout an error. */
const run = (cmd: string, args: readonly string[], timeoutMs: number): Promise<ExecResult> => runCommand(cmd, args, { timeoutMs, allowFail: true });

/** Resolves with the first stdout line of `child` that parses as JSON; rejects on exit or timeout. */
function nextJsonLine(child: ChildProcess, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    const finish = (fn: () => void): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onErr);
      child.off('exit', onExit);
      fn();
    };
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      const line = buffered.slice(0, nl);
      finish(() => {
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch {
          reject(new Error(`${what}: not JSON: ${line}`));
        }
      });
    };
    const onErr = (chunk: Buffer): void => {
      stderr += chunk.toString();
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(() => reject(new Error(`${what}: fixture exited (${code ?? signal}) first\n${stderr}`)));
    const onTimeout = (): void => finish(() => reject(new Error(`${what}: no output in ${timeoutMs} ms\n${stderr}`)));
    const timer = setTimeout(onTimeout, timeoutMs);
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onErr);
    child.on('exit', onExit);
  });
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fixture did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}


describe('weft addon (no privileges)', () => {
  it('loadAddon() returns the functions, the TunReader class and the flag constants', () => {
    const addon = loadAddon();
    expect(typeof addon.openTun).toBe('function');
    expect(typeof addon.writePacket).toBe('function');
    expect(typeof addon.TunReader).toBe('function');
    expect(addon.TUN_MULTI_QUEUE).toBe(1);
    expect(addon.TUN_VNET_HDR).toBe(2);
  });

  it('weft.node exports what weftd uses and none of the test addon\'s entry points', () => {
    expect(Object.keys(loadAddon()).sort()).toEqual(
      ['COUNTER_NAMES', 'TUN_MULTI_QUEUE', 'TUN_VNET_HDR', 'TunReader', 'createEngine', 'engineInfo', 'engineSetRoutes', 'engineStop',
        'engineWgActivity', 'engineWgEnable', 'engineWgInstall', 'engineWgKeepalive', 'engineWgRetire', 'engineWgSend', 'engineWgTake', 'lockFile', 'netlinkTransact', 'openTun', 'sdNotify', 'writePacket'],
    );
    const production = new Set(Object.keys(loadAddon()));
    expect(Object.keys(loadTestAddon()).filter((name) => production.has(name))).toEqual([]);
  });

  it('accept_local over rtnetlink (configureTun\'s first step) names the errno for a device that is not there, and refuses a name no device can have before asking the kernel', () => {
    const setAcceptLocal = (name: string) => rtnlSteps([{ what: `cannot set net.ipv4.conf.${name}.accept_local over rtnetlink`, req: acceptLocalRequest(name) }]);
    expect(() => setAcceptLocal('weftnothere0')).toThrow(/accept_local over rtnetlink: (ENODEV|EPERM)$/);
    expect(() => setAcceptLocal('a'.repeat(16))).toThrow(/is not a valid interface name/);
    expect(() => setAcceptLocal('we\0ft')).toThrow(/is not a valid interface name/);
  });

  it('netlinkTransact() throws for arguments that are not a protocol and whole messages, and answers nothing to nothing', () => {
    const { netlinkTransact } = loadAddon();
    expect(() => (netlinkTransact as (p: unknown, b: unknown) => Buffer)('route', Buffer.alloc(0))).toThrow(TypeError);
    expect(() => (netlinkTransact as (p: unknown, b: unknown) => Buffer)(0, 'bytes')).toThrow(TypeError);
    expect(() => netlinkTransact(0, Buffer.alloc(3))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // A header claiming more bytes than there are.
    const truncated = Buffer.alloc(16);
    truncated.writeUInt32LE(64, 0);
    expect(() => netlinkTransact(0, truncated)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(netlinkTransact(0, Buffer.alloc(0))).toHaveLength(0);
  });

  it('TunReader rejects a slab smaller than lengths.length * slotSize with a RangeError', () => {
    const { TunReader } = loadAddon();
    expect(() => new TunReader(0, Buffer.alloc(1000), 256, new Uint32Array(4), () => {})).toThrow(RangeError);
    expect(() => new TunReader(0, Buffer.alloc(1000), 256, new Uint32Array(4), () => {})).toThrow(
      /slab is too small: 1000 bytes < lengths.length \(4\) \* slotSize \(256\) = 1024/,
    );
    expect(() => new TunReader(0, Buffer.alloc(16), 0, new Uint32Array(1), () => {})).toThrow(RangeError);
  });

  it('TunReader and writePacket reject wrong argument types with a TypeError', () => {
    const { TunReader, writePacket } = loadAddon();
    const bad = (...args: unknown[]) => () => new (TunReader as unknown as new (...a: unknown[]) => unknown)(...args);
    expect(bad('0', Buffer.alloc(16), 4, new Uint32Array(4), () => {})).toThrow(TypeError);
    expect(bad(0, new Uint32Array(4), 4, new Int32Array(4), () => {})).toThrow(/lengths must be a Uint32Array/);
    expect(bad(0, Buffer.alloc(16), 4, new Uint32Array(4), 'cb')).toThrow(/onBatch must be a function/);
    expect(() => (writePacket as (...a: unknown[]) => number)(0, 'x', 0, 1)).toThrow(TypeError);
    expect(() => writePacket(0, Buffer.alloc(4), 2, 3)).toThrow(RangeError);
  });

  it('TunReader reads a FIFO in batches, draining full batches, and stops cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-fifo-'));
    const fifo = join(dir, 'f');
    let fd = -1;
    try {
      expect((await run('mkfifo', [fifo], 5000)).code).toBe(0);
      fd = openSync(fifo, 'r+'); // O_RDWR: never blocks, never sees EOF
      const { TunReader } = loadAddon();
      const slab = Buffer.alloc(8);
      const lengths = new Uint32Array(2);
      const batches: Array<{ count: number; errno: number; data: string[] }> = [];
      const reader = new TunReader(fd, slab, 4, lengths, (count, errno) => {
        const data: string[] = [];
        for (let i = 0; i < count; i++) data.push(slab.toString('latin1', i * 4, i * 4 + lengths[i]!));
        batches.push({ count, errno, data });
      });
      reader.start();
      reader.start(); // idempotent
      writeSync(fd, Buffer.from('abcdefghij'));
      await until('three reads', () => batches.reduce((n, b) => n + b.count, 0) >= 3, 5000, 10);
      // A pipe is a byte stream: 4-byte slots give abcd, efgh, ij; the first
      // batch is full, so the reader drains on to a second in the same event.
      expect(batches).toEqual([
        { count: 2, errno: 0, data: ['abcd', 'efgh'] },
        { count: 1, errno: 0, data: ['ij'] },
      ]);
      reader.stop();
      reader.stop(); // idempotent
      writeSync(fd, Buffer.from('late'));
      await new Promise((r) => setTimeout(r, 50));
      expect(batches).toHaveLength(2);
      expect(() => reader.start()).toThrow(/stopped/);
    } finally {
      if (fd >= 0) closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('KernelTun (needs root: creates a network namespace and a TUN device)', () => {
  const ns = `wtt-${process.pid}-${randomBytes(2).toString('hex')}`;
  const children: ChildProcess[] = [];

  /** Starts the fixture inside the namespace; `ip netns exec` execs node, so the PID is the fixture's. */
  function startFixture(args: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', FIXTURE, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, WEFT_TEST_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
      stdio: ['pipe', 'pipe', 'pipe'], // stdin: closing it tells the fixture to quit
    });
    children.push(child);
    return child;
  }

  beforeAll(async () => {
    const r = await run('ip', ['netns', 'add', ns], 5000);
    if (r.code !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr}`);
  }, 10_000);

  afterAll(async () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await waitExit(child, 5000).catch(() => {});
      }
    }
    await run('ip', ['netns', 'del', ns], 10_000).catch(() => {});
  }, 20_000);

  it('answers ping through the TUN, and the device is gone after close()', async () => {
    const child = startFixture(['echo']);
    const ready = await nextJsonLine(child, 20_000, 'fixture ready');
    expect(ready).toEqual({ ready: true, name: 'wtun0' });

    const pingArgs = ['netns', 'exec', ns, 'ping', '-c', '3', '-W', '1', '-i', '0.2', '198.19.77.2'];
    const ping = await run('ip', pingArgs, 15_000);
    expect(ping.code, `ping failed:\n${ping.stdout}${ping.stderr}`).toBe(0);

    const stats = nextJsonLine(child, 5000, 'fixture stats');
    child.kill('SIGTERM');
    const { packets, echoReplies, writeFailures, readErrors } = await stats;
    expect(await waitExit(child, 5000)).toBe(0);
    expect(packets).toBeGreaterThanOrEqual(3);
    expect(echoReplies).toBeGreaterThanOrEqual(3);
    expect(writeFailures).toBe(0);
    expect(readErrors).toEqual([]);

    // The fixture's close() closed the only fd of a non-persistent device.
    const show = await run('ip', ['-n', ns, 'link', 'show', 'wtun0'], 5000);
    expect(show.code).not.toBe(0);
  }, 60_000);

  it('cuts a packet longer than the read slot to the slot, without an error (what the js engine relies on)', async () => {
    const child = startFixture(['echo']);
    await nextJsonLine(child, 20_000, 'fixture ready');
    // The fixture reads 2048-byte slots: raise the MTU so the kernel routes 3028-byte packets into the TUN.
    expect((await run('ip', ['-n', ns, 'link', 'set', 'wtun0', 'mtu', '4000'], 5000)).code).toBe(0);
    const big = await run('ip', ['netns', 'exec', ns, 'ping', '-c', '2', '-W', '1', '-i', '0.2', '-M', 'do', '-s', '3000', '198.19.77.2'], 15_000);
    expect(big.code).not.toBe(0);
    const stats = nextJsonLine(child, 5000, 'fixture stats');
    child.kill('SIGTERM');
    const { fullSlots, echoReplies, readErrors } = await stats;
    expect(await waitExit(child, 5000)).toBe(0);
    expect(fullSlots).toBe(2);
    expect(echoReplies).toBe(0);
    expect(readErrors).toEqual([]);
  }, 60_000);

  it('refuses a 20-character device name with WEFT_TUN_OPEN naming it', async () => {
    const name = 'wtun-name-too-long-x';
    expect(name).toHaveLength(20);
    const child = startFixture(['open', name]);
    const result = await nextJsonLine(child, 20_000, 'open result');
    expect(await waitExit(child, 5000)).toBe(0);
    expect(result.code).toBe('WEFT_TUN_OPEN');
    expect(result.message).toContain(`"${name}"`);
    expect(result.message).toContain('EINVAL');
  }, 30_000);
});
