// In-memory twins of the dataplane seams (TunPort, UdpTransport), so engines
// run in one test process with no root: packets injected into a MemoryTun
// come out of the engine as datagrams on a MemoryNetwork, and back.

import type { TunBatchHandler, TunPort } from '../../src/host/tun_port.js';
import { formatIp, parseIp } from '../../src/net/ipv4.js';
import type { DatagramHandler, SendDone, UdpTransport } from '../../src/host/udp_transport.js';

export class MemoryTun implements TunPort {
  readonly name = 'mem0';
  /** Packets the engine wrote, copied. */
  readonly written: Buffer[] = [];
  private slab: Buffer | undefined;
  private lengths: Uint32Array | undefined;
  private slotSize = 0;
  private onBatch: TunBatchHandler | undefined;
  closed = false;
  failed = false;

  startReading(slotSize: number, batch: number, onBatch: TunBatchHandler): void {
    this.slotSize = slotSize;
    this.slab = Buffer.alloc(slotSize * batch);
    this.lengths = new Uint32Array(batch);
    this.onBatch = onBatch;
  }

  /** Delivers packets to the engine as batches, as the kernel TUN would (truncating at the slot size). */
  inject(packets: readonly Uint8Array[]): void {
    if (!this.onBatch || !this.slab || !this.lengths) throw new Error('engine is not reading');
    const batch = this.lengths.length;
    for (let start = 0; start < packets.length; start += batch) {
      const chunk = packets.slice(start, start + batch);
      chunk.forEach((p, i) => {
        const n = Math.min(p.length, this.slotSize);
        this.slab!.set(p.subarray(0, n), i * this.slotSize);
        this.lengths![i] = n;
      });
      this.onBatch(this.slab, this.lengths, chunk.length);
    }
  }

  write(buf: Buffer, offset: number, length: number): boolean {
    if (this.closed) return false;
    this.written.push(Buffer.from(buf.subarray(offset, offset + length)));
    return true;
  }

  close(): void {
    this.closed = true;
  }
}

interface Endpoint {
  readonly handler: DatagramHandler;
}

/** A switch of UDP endpoints keyed by "ip:port"; delivery is asynchronous, like a network. */
export class MemoryNetwork {
  private readonly endpoints = new Map<string, Endpoint>();
  /** Every datagram sent, with its addressing, for assertions. */
  readonly sent: { from: string; to: string; port: number; data: Buffer; hash: number }[] = [];

  transport(ip: string, port: number): MemoryUdp {
    return new MemoryUdp(this, ip, port);
  }

  register(key: string, ep: Endpoint): void {
    this.endpoints.set(key, ep);
  }

  unregister(key: string): void {
    this.endpoints.delete(key);
  }

  deliver(from: string, to: string, port: number, data: Buffer, hash: number): void {
    this.sent.push({ from, to, port, data, hash });
    const ep = this.endpoints.get(`${to}:${port}`);
    if (ep) setImmediate(() => ep.handler(data, data.length, Math.max(parseIp(from), 0)));
  }

  /** Sends raw bytes to an endpoint as if from `from` (malformed or spoofed traffic). */
  inject(from: string, to: string, port: number, data: Buffer): void {
    this.deliver(from, to, port, data, 0);
  }
}

export class MemoryUdp implements UdpTransport {
  constructor(
    private readonly net: MemoryNetwork,
    private readonly ip: string,
    private readonly port: number,
  ) {}

  async start(handler: DatagramHandler): Promise<void> {
    this.net.register(`${this.ip}:${this.port}`, { handler });
  }

  send(buf: Buffer, len: number, ip: number, port: number, hash: number, done: SendDone): void {
    this.net.deliver(this.ip, formatIp(ip), port, Buffer.from(buf.subarray(0, len)), hash);
    done(null);
  }

  async close(): Promise<void> {
    this.net.unregister(`${this.ip}:${this.port}`);
  }
}
