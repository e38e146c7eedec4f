// host:port addresses to listen on or connect to (IPv4, or bracketed IPv6):
// parsing and printing, pure.

import { isIPv6 } from 'node:net';
import { DEFAULT_METRICS_ADDR } from '../constants.js';
import { parseIp } from './ipv4.js';

/** An address to listen on or connect to; `host` is bare (`::1`, not `[::1]`). */
export interface ListenAddr {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `a.b.c.d:port` or `[v6]:port` (port 0-65535; 0 asks the kernel for
 * a free one). `fail` builds the error for a bad value, so callers name
 * their own flag.
 */
export function parseListenAddr(text: string, fail: (why: string) => Error): ListenAddr {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) throw fail(`"${text}" is not host:port, like ${DEFAULT_METRICS_ADDR} or [::1]:9474`);
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined ? !isIPv6(host) : parseIp(host) < 0) throw fail(`"${host}" in "${text}" is not an IPv4 address or a bracketed IPv6 one`);
  const port = Number(m[3]);
  if (port > 65535) throw fail(`port ${port} in "${text}" is above 65535`);
  return { host, port };
}

export function formatListenAddr(a: ListenAddr): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
