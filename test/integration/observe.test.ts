// The HTTP endpoints over a fake StatusSource on 127.0.0.1 (port 0), weftd's
// own server while it waits for etcd, and `weftctl status` against them. No root.

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDaemonArgs } from '../../src/cli/weftd_flags.js';
import { isWeftError } from '../../src/errors.js';
import { formatListenAddr, parseListenAddr } from '../../src/net/listen_addr.js';
import { ObserveServer } from '../../src/observe/http_server.js';
import { renderMetrics } from '../../src/observe/metrics.js';
import { runCli } from '../harness/cli.js';
import { FakeStatusSource, sampleStatus } from '../harness/status_fixture.js';
import { WEFTCTL, WEFTD } from '../lab/cluster.js';

const LOOPBACK = { host: '127.0.0.1', port: 0 };

describe('observe HTTP server', () => {
  const source = new FakeStatusSource();
  let server: ObserveServer;
  let base: string;

  beforeAll(async () => {
    server = await ObserveServer.start(source, LOOPBACK);
    base = `http://${formatListenAddr(server.address)}`;
  });
  afterAll(() => server.close());

  it('listens on the port the kernel chose', () => {
    expect(server.address.host).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
  });

  it('serves /metrics in Prometheus text format, computed per request', async () => {
    source.current = sampleStatus();
    const r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await r.text();
    // weft's metrics, then the process's own (prom-client's default collectors).
    expect(text.startsWith(renderMetrics(source.current))).toBe(true);
    for (const m of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(text, m).toMatch(new RegExp(`^${m} `, 'm'));
    }
    source.current = sampleStatus({ peers: [] });
    expect(await (await fetch(`${base}/metrics?x=1`)).text()).toMatch(/^weft_peers 0$/m);
  });

  it('answers /healthz 200 with a JSON reason, whatever the readiness', async () => {
    source.current = sampleStatus({ state: 'starting', readiness: { status: 'not_ready', reasons: ['starting: no lease or dataplane yet'] } });
    const r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await r.json()).toEqual({ status: 'alive', reasons: ['weftd is starting'] });
  });

  it('answers /readyz 200 when ready or degraded and 503 when not ready, with the reasons', async () => {
    for (const [readiness, code] of [
      [{ status: 'ready', reasons: [] }, 200],
      [{ status: 'degraded', reasons: ['etcd unreachable for 12 s (grace 300 s); forwarding with the last table'] }, 200],
      [{ status: 'not_ready', reasons: ['starting: no lease or dataplane yet', 'waiting for etcd http://127.0.0.1:1: it has not answered yet'] }, 503],
    ] as const) {
      source.current = sampleStatus({ readiness });
      const r = await fetch(`${base}/readyz`);
      expect(r.status, readiness.status).toBe(code);
      expect(await r.json()).toEqual(readiness);
    }
  });

  it('serves the whole status as JSON on /status', async () => {
    source.current = sampleStatus();
    const r = await fetch(`${base}/status`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual(JSON.parse(JSON.stringify(source.current)));
  });

  it('answers HEAD with the headers only', async () => {
    const r = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(Number(r.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await r.text()).toBe('');
  });

  it('404s unknown paths and 405s other methods', async () => {
    for (const path of ['/', '/metricsx', '/status/extra', '/METRICS']) {
      const r = await fetch(`${base}${path}`);
      expect(r.status, path).toBe(404);
      expect(((await r.json()) as { paths: string[] }).paths).toEqual(['/metrics', '/healthz', '/readyz', '/status']);
    }
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await fetch(`${base}/metrics`, { method });
      expect(r.status, method).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD');
    }
  });

  it('answers 500 with the message when status() throws, and keeps serving', async () => {
    const broken = { status: (): never => { throw new Error('boom'); } };
    const s = await ObserveServer.start(broken, LOOPBACK);
    try {
      const r = await fetch(`http://${formatListenAddr(s.address)}/status`);
      expect(r.status).toBe(500);
      expect(await r.json()).toEqual({ error: 'boom' });
      expect((await fetch(`http://${formatListenAddr(s.address)}/nope`)).status).toBe(404);
    } finally {
      await s.close();
    }
  });

  it('refuses an address in use with a WEFT_HOST_SETUP error naming it', async () => {
    const err: unknown = await ObserveServer.start(source, server.address).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_HOST_SETUP')).toBe(true);
    expect((err as Error).message).toBe(`cannot serve metrics and health on ${formatListenAddr(server.address)}: the address is in use (is another weftd running?); choose another --metrics-addr, or --metrics-addr off`);
  });

  it('closes promptly even with a keep-alive connection open', async () => {
    const s = await ObserveServer.start(source, LOOPBACK);
    const url = `http://${formatListenAddr(s.address)}/healthz`;
    expect((await fetch(url, { keepalive: true })).status).toBe(200);
    const t0 = Date.now();
    await s.close();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(fetch(url)).rejects.toThrow();
  });
});

describe('--metrics-addr', () => {
  const fail = (why: string): Error => new Error(why);

  it('parses IPv4 and bracketed IPv6 host:port', () => {
    expect(parseListenAddr('127.0.0.1:9474', fail)).toEqual({ host: '127.0.0.1', port: 9474 });
    expect(parseListenAddr('0.0.0.0:0', fail)).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseListenAddr('[::1]:9474', fail)).toEqual({ host: '::1', port: 9474 });
    expect(formatListenAddr({ host: '::1', port: 9474 })).toBe('[::1]:9474');
    for (const bad of ['9474', '127.0.0.1', '127.0.0.1:', 'localhost:9474', '::1:9474', '[127.0.0.1]:9474', '300.0.0.1:9474', '127.0.0.1:65536', '127.0.0.1:-1', ':9474']) {
      expect(() => parseListenAddr(bad, fail), bad).toThrow();
    }
  });

  it('defaults to 127.0.0.1:9474 in weftd, and turns off with "" or off', () => {
    const opts = (argv: string[], env: NodeJS.ProcessEnv = {}): unknown => {
      const cmd = parseDaemonArgs(argv, env);
      if (cmd.kind !== 'run') throw new Error('not run');
      return cmd.options.metricsAddr;
    };
    expect(opts([])).toEqual({ host: '127.0.0.1', port: 9474 });
    expect(opts(['--metrics-addr', ''])).toBeNull();
    expect(opts(['--metrics-addr=off'])).toBeNull();
    expect(opts([], { WEFT_METRICS_ADDR: 'off' })).toBeNull();
    expect(opts([], { WEFT_METRICS_ADDR: '[::1]:9100' })).toEqual({ host: '::1', port: 9100 });
    expect(() => opts(['--metrics-addr', 'localhost:9474'])).toThrow('--metrics-addr: "localhost" in "localhost:9474" is not an IPv4 address or a bracketed IPv6 one');
    expect(() => opts(['--metrics-addr', '9474'])).toThrow('--metrics-addr: "9474" is not host:port, like 127.0.0.1:9474 or [::1]:9474');
  });
});

/** Collects a child's stdout until `re` matches a line; returns that line. */
function waitForLine(child: ReturnType<typeof spawn>, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; got:\n${buf}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => re.test(l));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
  });
}

describe('weftd serving while it waits for etcd', () => {
  it('answers /healthz 200 and /readyz 503 saying it waits for etcd, then stops cleanly', async () => {
    const child = spawn(process.execPath, [WEFTD, '--etcd-endpoints', 'http://127.0.0.1:1', '--public-ip', '198.18.0.1', '--mtu', '1464', '--metrics-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const line = await waitForLine(child, /"event":"metrics_listening"/, 10_000);
      const addr = (JSON.parse(line) as { addr: string }).addr;
      expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
      const health = await fetch(`http://${addr}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'alive', reasons: ['weftd is starting'] });
      const ready = await fetch(`http://${addr}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; reasons: string[] };
      expect(body.status).toBe('not_ready');
      expect(body.reasons).toContain('waiting for etcd http://127.0.0.1:1: it has not answered yet');
      const metrics = await (await fetch(`http://${addr}/metrics`)).text();
      expect(metrics).toMatch(/^weft_etcd_connected 0$/m);
      expect(metrics).toMatch(/^process_resident_memory_bytes \d+/m);
      // promtool parses all of it; its only lint complaints may be prom-client's own nodejs_active_*_total gauges.
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8', timeout: 10_000 });
      expect(lint.error, 'promtool (Debian package prometheus)').toBeUndefined();
      expect([0, 3], `${lint.stdout}${lint.stderr}`).toContain(lint.status);
      const complaints = `${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.trim() !== '');
      expect(complaints.filter((l) => !/^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(l))).toEqual([]);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);

  it('exits 1 with one line naming the address when it is in use', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runCli(WEFTD, ['--etcd-endpoints', 'http://127.0.0.1:1', '--public-ip', '198.18.0.1', '--mtu', '1464', '--metrics-addr', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`weftd: cannot serve metrics and health on 127.0.0.1:${port}: the address is in use (is another weftd running?); choose another --metrics-addr, or --metrics-addr off\n`);
    } finally {
      blocker.close();
    }
  });
});

describe('weftctl status', () => {
  const source = new FakeStatusSource();
  let server: ObserveServer;
  let addr: string;

  beforeAll(async () => {
    server = await ObserveServer.start(source, LOOPBACK);
    addr = formatListenAddr(server.address);
  });
  afterAll(() => server.close());

  it('prints node, subnet, lease, engine, readiness, etcd, peers and counters', async () => {
    source.current = sampleStatus();
    const r = await runCli(WEFTCTL, ['status', '--metrics-addr', addr]);
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^node\s+node1 \(weftd 0\.1\.0, running\)$/m);
    expect(out).toMatch(/^readiness\s+ready$/m);
    expect(out).toMatch(/^subnet\s+198\.19\.1\.0\/24 of 198\.19\.0\.0\/16$/m);
    expect(out).toMatch(/^lease\s+expires in 23h53m unless renewed \(renewals 3, re-acquisitions 1, subnets lost 0\)$/m);
    expect(out).toMatch(/^engine\s+native \(queues 2, vnetHdr true\)$/m);
    expect(out).toMatch(/^etcd\s+connected \(http:\/\/198\.18\.0\.254:2379; last answer 2 s ago; watch resyncs 7; ignored leases 2 \(invalid 1, public_ip_in_network 1\)\)$/m);
    expect(out).toMatch(/^SUBNET\s+NODE\s+PUBLIC IP$/m);
    expect(out).toMatch(/^198\.19\.2\.0\/24\s+node2\s+198\.18\.0\.2:4790$/m);
    expect(out).toMatch(/^inside \(pods -> nodes\)\s+100\s+101\s+\d+$/m);
  });

  it('says why when not ready', async () => {
    source.current = sampleStatus({ readiness: { status: 'degraded', reasons: ['etcd unreachable for 12 s (grace 300 s); forwarding with the last table'] } });
    expect((await runCli(WEFTCTL, ['status', '--metrics-addr', addr])).stdout).toMatch(/^readiness\s+degraded: etcd unreachable for 12 s/m);
  });

  it('prints the raw JSON with --json', async () => {
    source.current = sampleStatus();
    const r = await runCli(WEFTCTL, ['status', '--json', '--metrics-addr', addr]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(JSON.stringify(source.current)));
  });

  it('exits 1 with one line when no weftd answers', async () => {
    const free = await ObserveServer.start(source, LOOPBACK);
    const where = formatListenAddr(free.address);
    await free.close();
    const r = await runCli(WEFTCTL, ['status', '--metrics-addr', where]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`weftctl: weftd is not running or not listening on ${where} (ECONNREFUSED); see weftd's --metrics-addr\n`);
  });

  it('exits 2 for a bad --metrics-addr', async () => {
    const r = await runCli(WEFTCTL, ['status', '--metrics-addr', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('weftctl: --metrics-addr: "nope" is not host:port, like 127.0.0.1:9474 or [::1]:9474\n');
  });
});
