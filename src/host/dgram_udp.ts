// The kernel's UDP sockets for the js engine: one receiving socket on the
// cluster port, and a few sending sockets on ephemeral ports so the outer
// source port varies with the inner flow, as the wire format asks
// (docs/architecture.md, "Wire format"); or, for WireGuard, one socket that
// receives and sends (WireGuard peers answer the address and port they hear from).

import dgram from 'node:dgram';
import { once } from 'node:events';
import { JS_ENTROPY_SOCKETS } from '../constants.js';
import { formatIp, parseIp } from '../net/ipv4.js';
import type { DatagramHandler, SendDone, UdpTransport } from './udp_transport.js';

/**
 * dgram speaks dotted quads, the engine 32-bit numbers: a memo of the
 * conversions, so a datagram costs a map lookup rather than a parse or a new
 * string. Bounded (spoofed sources are unbounded): emptied when full.
 */
class AddressMemo<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly convert: (k: K) => V) {}
  get(k: K): V {
    let v = this.map.get(k);
    if (v === undefined) {
      if (this.map.size >= 4096) this.map.clear();
      v = this.convert(k);
      this.map.set(k, v);
    }
    return v;
  }
}

export class DgramUdp implements UdpTransport {
  private readonly rx: dgram.Socket;
  /** Sending sockets bound to ephemeral ports, which Linux takes from 32768-60999 by default. */
  private readonly tx: dgram.Socket[] = [];
  private readonly ips = new AddressMemo<string, number>((host) => Math.max(parseIp(host), 0)); // 0.0.0.0: never a peer
  private readonly hosts = new AddressMemo<number, string>(formatIp);

  /** `entropySockets` sending sockets on ephemeral ports; 0: send from the bound socket. */
  constructor(
    private readonly bindHost: string,
    private readonly port: number,
    entropySockets = JS_ENTROPY_SOCKETS,
  ) {
    this.rx = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    for (let i = 0; i < entropySockets; i++) this.tx.push(dgram.createSocket('udp4'));
  }

  async start(handler: DatagramHandler): Promise<void> {
    this.rx.on('message', (msg, rinfo) => handler(msg, msg.length, this.ips.get(rinfo.address)));
    const bound = once(this.rx, 'listening');
    this.rx.bind(this.port, this.bindHost);
    await bound;
    for (const s of this.tx) {
      // Nothing is expected on the sending sockets; drain them so they never fill.
      s.on('message', () => {});
      const ok = once(s, 'listening');
      s.bind(0, this.bindHost);
      await ok;
    }
  }

  send(buf: Buffer, len: number, ip: number, port: number, hash: number, done: SendDone): void {
    const sock = this.tx.length === 0 ? this.rx : this.tx[hash % this.tx.length]!;
    sock.send(buf, 0, len, port, this.hosts.get(ip), done);
  }

  async close(): Promise<void> {
    await Promise.all([this.rx, ...this.tx].map((s) => new Promise<void>((resolve) => s.close(() => resolve())).catch(() => {})));
  }
}
