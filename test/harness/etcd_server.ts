// A real etcd server (Debian's etcd-server) on 127.0.0.1 for tests that need
// no namespaces: started on free ports in a temp dir, stopped by PID; plain
// http, or https with a server certificate and optional client-cert auth.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdServer {
  readonly endpoint: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Serve clients over https (PEM files). */
export interface EtcdTlsOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA of the server certificate; with clientCertAuth, also the CA client certificates must chain to (--trusted-ca-file). */
  readonly caFile: string;
  /** --client-cert-auth: refuse clients without a certificate signed by caFile. */
  readonly clientCertAuth?: boolean;
  /** The client certificate the health probe presents; needed with clientCertAuth. */
  readonly probeCertFile?: string;
  readonly probeKeyFile?: string;
}

export interface EtcdStartOptions {
  readonly tls?: EtcdTlsOptions;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** GET /health over https, trusting tls.caFile and presenting the probe certificate. */
function httpsHealthy(url: string, tls: EtcdTlsOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca: readFileSync(tls.caFile),
        ...(tls.probeCertFile && tls.probeKeyFile ? { cert: readFileSync(tls.probeCertFile), key: readFileSync(tls.probeKeyFile) } : {}),
        timeout: 1000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function waitHealthy(endpoint: string, child: ChildProcess, timeoutMs: number, tls?: EtcdTlsOptions): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}`);
    try {
      if (tls) {
        if (await httpsHealthy(`${endpoint}/health`, tls)) return;
      } else {
        const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms`);
}

export async function startEtcd(opts: EtcdStartOptions = {}): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const { tls } = opts;
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const tlsArgs = tls
    ? ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, ...(tls.clientCertAuth ? ['--client-cert-auth'] : [])]
    : [];
  const child = spawn(
    'etcd',
    [
      '--name', 'test',
      '--data-dir', join(dir, 'data'),
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
      '--log-level', 'error',
      ...tlsArgs,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`cannot start etcd (apt-get install etcd-server): ${err.message}`)));
    });
    await waitHealthy(endpoint, child, 15_000, tls);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return { endpoint, pid: child.pid!, stop };
}
