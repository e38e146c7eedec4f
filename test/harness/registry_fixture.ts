// Registries against the run's loopback etcd, each under its own key prefix.

import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { parseCidr } from '../../src/net/ipv4.js';
import { EtcdRegistry } from '../../src/registry/etcd_registry.js';
import type { NetworkConfig } from '../../src/registry/schema.js';

export function etcdEndpoint(): string {
  return inject('etcdEndpoint');
}

export function uniquePrefix(tag: string): string {
  return `/weft-test/${tag}-${randomBytes(4).toString('hex')}`;
}

export function registry(prefix: string, endpoint = etcdEndpoint(), callTimeoutMs?: number): EtcdRegistry {
  return new EtcdRegistry({ endpoints: [endpoint], prefix, ...(callTimeoutMs ? { callTimeoutMs } : {}) });
}

export function config(network = '198.19.0.0/16', subnetLen = 24): NetworkConfig {
  return { network: parseCidr(network), subnetLen, vni: 1, port: 4790, encryption: 'off', wireguardPort: 51820 };
}

/** A logger whose records are kept as parsed objects, to assert on events. */
export function captureLogger(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), records };
}
