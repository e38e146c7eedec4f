// The js engine: the readable reference dataplane in TypeScript over a TUN
// port and a UDP transport. Same behaviour as the native engine; slower.
//
//   inside:  TUN batch -> classifyInside -> [8-byte VXLAN-GPE | packet] -> UDP to the owning node
//                                       \-> ICMP net-unreachable back into the TUN
//   outside: UDP datagram -> acceptOutside -> inner packet -> TUN

import { GPE_NEXT_PROTO_IPV4, JS_TUN_BATCH, VXLAN_GPE_HEADER_LEN } from '../constants.js';
import type { RouteTable } from '../routes/route_table.js';
import { ICMP_ERROR_MAX, ICMP_NET_UNREACHABLE, flowHash, icmpErrorLength, writeIcmpUnreachable } from '../wire/ipv4_packet.js';
import { writeGpeHeader } from '../wire/vxlan_gpe.js';
import { C, COUNTER_NAMES, type CounterSnapshot, snapshot } from './counters.js';
import type { Engine, EngineConfig, EngineDetails } from './engine.js';
import { IcmpBudget } from './icmp_budget.js';
import { INSIDE_DROP, INSIDE_UNREACHABLE, classifyInside } from './inside.js';
import { acceptOutside } from './outside.js';
import type { TunPort } from '../host/tun_port.js';
import type { SendDone, UdpTransport } from '../host/udp_transport.js';

/** Send buffers in flight at most; past that, packets are dropped as send errors. */
const SEND_POOL = 256;

/** A send buffer and its completion callback, bound once so a send allocates no closure. */
interface SendSlot {
  readonly buf: Buffer;
  /** Inner bytes in flight, counted when the send completes. */
  len: number;
  readonly done: SendDone;
}

export class JsEngine implements Engine {
  readonly kind = 'js' as const;
  private table: RouteTable;
  private readonly c = new Float64Array(COUNTER_NAMES.length);
  private readonly freeSlots: SendSlot[] = [];
  private readonly icmpScratch: Buffer;
  private readonly icmpBudget = new IcmpBudget();
  /** TUN read slots: one byte above the MTU, so a packet the kernel cut to fit fills its slot and shows. */
  private readonly readSlot: number;
  private started = false;
  private closed = false;

  constructor(
    private readonly cfg: EngineConfig,
    private readonly tun: TunPort,
    private readonly udp: UdpTransport,
    initial: RouteTable,
  ) {
    this.table = initial;
    this.readSlot = cfg.mtu + 1;
    this.icmpScratch = Buffer.alloc(ICMP_ERROR_MAX);
    for (let i = 0; i < SEND_POOL; i++) {
      const slot: SendSlot = {
        buf: Buffer.alloc(cfg.mtu + VXLAN_GPE_HEADER_LEN),
        len: 0,
        done: (err) => {
          if (!err) {
            this.c[C.inside_packets]!++;
            this.c[C.inside_bytes]! += slot.len;
          } else this.c[C.inside_drop_send_error]!++;
          this.freeSlots.push(slot);
        },
      };
      this.freeSlots.push(slot);
    }
  }

  async start(): Promise<void> {
    if (this.started || this.closed) throw new Error('engine already started or closed');
    this.started = true;
    await this.udp.start((buf, len, srcIp) => this.outside(buf, len, srcIp));
    this.tun.startReading(
      this.readSlot,
      JS_TUN_BATCH,
      (slab, lengths, count) => this.inside(slab, lengths, count),
      () => this.c[C.inside_drop_read_error]!++,
    );
  }

  setRoutes(table: RouteTable): void {
    this.table = table;
  }

  healthy(): boolean {
    return this.started && !this.closed && !this.tun.failed;
  }

  details(): EngineDetails {
    return { queues: 1 };
  }

  counters(): CounterSnapshot {
    return snapshot(this.c);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tun.close();
    await this.udp.close();
  }

  private inside(slab: Buffer, lengths: Uint32Array, count: number): void {
    const slot = this.readSlot;
    const table = this.table;
    for (let i = 0; i < count; i++) {
      const off = i * slot;
      const len = lengths[i]!;
      if (len === slot) {
        this.c[C.inside_drop_read_error]!++; // cut by the kernel: longer than the MTU weft configured
        continue;
      }
      const peer = classifyInside(slab, off, len, table, this.c);
      if (peer === INSIDE_DROP) continue;
      if (peer === INSIDE_UNREACHABLE) {
        this.sendUnreachable(slab, off, len);
        continue;
      }
      const out = this.freeSlots.pop();
      if (out === undefined) {
        this.c[C.inside_drop_send_error]!++;
        continue;
      }
      writeGpeHeader(out.buf, 0, this.cfg.vni, GPE_NEXT_PROTO_IPV4);
      slab.copy(out.buf, VXLAN_GPE_HEADER_LEN, off, off + len);
      out.len = len;
      this.udp.send(out.buf, len + VXLAN_GPE_HEADER_LEN, table.peerIpAt(peer), table.peerPortAt(peer), flowHash(slab, off, len), out.done);
    }
  }

  private sendUnreachable(pkt: Buffer, off: number, len: number): void {
    if (icmpErrorLength(pkt, off, len) > this.icmpScratch.length) return;
    if (!this.icmpBudget.take(performance.now())) {
      this.c[C.inside_icmp_rate_limited]!++;
      return;
    }
    const n = writeIcmpUnreachable(this.icmpScratch, pkt, off, len, this.cfg.tunAddr, ICMP_NET_UNREACHABLE);
    if (this.tun.write(this.icmpScratch, 0, n)) this.c[C.inside_icmp_unreachable]!++;
  }

  private outside(buf: Buffer, len: number, srcIp: number): void {
    const table = this.table;
    if (!acceptOutside(buf, 0, len, srcIp, table, this.cfg.self, this.cfg.vni, this.c)) return;
    const inner = VXLAN_GPE_HEADER_LEN;
    const innerLen = (buf[inner + 2]! << 8) | buf[inner + 3]!;
    if (!this.tun.write(buf, inner, innerLen)) {
      this.c[C.outside_drop_tun_write]!++;
      return;
    }
    this.c[C.outside_packets]!++;
    this.c[C.outside_bytes]! += innerLen;
  }
}
