// The client side of weftd's /status: fetching it from a local weftd,
// telling weftd's answer from anything else, and printing its durations
// (weftctl status and check).

import { request } from 'node:http';
import { type ListenAddr, formatListenAddr } from '../net/listen_addr.js';
import type { DaemonStatus } from './status.js';

const TIMEOUT_MS = 5000;

/** The raw body of weftd's /status at `addr`; a one-line Error when weftd does not answer or answers nonsense. */
export function fetchStatusText(addr: ListenAddr, timeoutMs = TIMEOUT_MS): Promise<string> {
  const where = formatListenAddr(addr);
  return new Promise((resolve, reject) => {
    const req = request({ host: addr.host, port: addr.port, path: '/status', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${where} answered /status with HTTP ${res.statusCode}: is that weftd's --metrics-addr?`));
        else resolve(body);
      });
      res.on('error', (err) => reject(new Error(`${where}: reading /status failed: ${err.message}`)));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`weftd is not running or not listening on ${where} (${err.code ?? err.message}); see weftd's --metrics-addr`)));
    req.end();
  });
}

export function parseStatus(text: string, addr: ListenAddr): DaemonStatus {
  try {
    const s = JSON.parse(text) as DaemonStatus;
    if (typeof s === 'object' && s !== null && typeof s.node === 'string' && Array.isArray(s.peers) && typeof s.readiness === 'object') return s;
  } catch {
    // fall through
  }
  throw new Error(`${formatListenAddr(addr)} answered /status with something that is not weftd's status`);
}

/** Seconds as `1h05m`, `3m07s` or `9s`; negative is `expired`. */
export function formatDuration(s: number): string {
  if (s < 0) return 'expired';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
