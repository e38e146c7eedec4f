// weftd's HTTP endpoints, on --metrics-addr (default 127.0.0.1:9474):
//
//   GET /metrics   Prometheus text format (metrics.ts, then process_metrics.ts)
//   GET /healthz   200 while the event loop runs (it answers at all)
//   GET /readyz    200 when ready or degraded, 503 when not ready; JSON status + reasons
//   GET /status    the whole DaemonStatus as JSON (what `weftctl status` reads)
//
// Every answer is computed from StatusSource.status() when it is asked for;
// nothing here runs per packet or on a timer. HEAD works wherever GET does;
// other methods get 405, other paths 404.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { StatusSource } from './status.js';
import { WeftError } from '../errors.js';
import { type ListenAddr, formatListenAddr } from '../net/listen_addr.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { processMetrics } from './process_metrics.js';

export const OBSERVE_PATHS = ['/metrics', '/healthz', '/readyz', '/status'] as const;

function bindFailure(addr: ListenAddr, err: NodeJS.ErrnoException): WeftError {
  const where = formatListenAddr(addr);
  const why =
    err.code === 'EADDRINUSE'
      ? 'the address is in use (is another weftd running?)'
      : err.code === 'EADDRNOTAVAIL'
        ? 'no interface has that address'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.message;
  return new WeftError('WEFT_HOST_SETUP', `cannot serve metrics and health on ${where}: ${why}; choose another --metrics-addr, or --metrics-addr off`, { addr: where, errno: err.code }, { cause: err });
}

/** The running server. Close it once; requests in flight are cut. */
export class ObserveServer {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    /** Where it listens; the port is the real one when 0 was asked for. */
    readonly address: ListenAddr,
  ) {}

  /**
   * Listens on `addr`; resolves once bound, rejects with a WEFT_HOST_SETUP
   * error naming the address when it cannot bind. `onError` hears of errors
   * after that (there should be none).
   */
  static start(source: StatusSource, addr: ListenAddr, onError: (err: Error) => void = () => undefined): Promise<ObserveServer> {
    const server = createServer((req, res) => handle(source, req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(bindFailure(addr, err)));
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.removeAllListeners('error');
        server.on('error', onError);
        const bound = server.address();
        const port = bound !== null && typeof bound === 'object' ? bound.port : addr.port;
        resolve(new ObserveServer(server, { host: addr.host, port }));
      });
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }
}

function handle(source: StatusSource, req: IncomingMessage, res: ServerResponse): void {
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: `method ${req.method ?? '?'} not allowed; use GET or HEAD` }, { Allow: 'GET, HEAD' });
      return;
    }
    const path = (req.url ?? '/').split('?', 1)[0];
    switch (path) {
      case '/metrics': {
        const weft = renderMetrics(source.status());
        processMetrics().then(
          (proc) => send(res, 200, weft + proc, METRICS_CONTENT_TYPE),
          (err: unknown) => sendJson(res, 500, { error: err instanceof Error ? err.message : String(err) }),
        );
        return;
      }
      case '/healthz':
        // Answering at all is the proof: the event loop runs.
        sendJson(res, 200, { status: 'alive', reasons: [`weftd is ${source.status().state}`] });
        return;
      case '/readyz': {
        const { status, reasons } = source.status().readiness;
        sendJson(res, status === 'not_ready' ? 503 : 200, { status, reasons });
        return;
      }
      case '/status':
        sendJson(res, 200, source.status());
        return;
      default:
        sendJson(res, 404, { error: `no such path ${path}`, paths: OBSERVE_PATHS });
    }
  } catch (err) {
    sendJson(res, 500, { error: err instanceof Error ? err.message : String(err) });
  }
}

function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  send(res, code, `${JSON.stringify(body, null, 2)}\n`, 'application/json; charset=utf-8', headers);
}

/** Writes a whole response; for HEAD, Node sends the headers only. */
function send(res: ServerResponse, code: number, body: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}
