// The js engine between in-memory TUNs and an in-memory network: forwarding,
// every drop reason, ICMP errors and live table swaps; and a WireGuard port
// it cannot bind on loopback, and one whose bind ends after the engine closed. No root.

import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import { setImmediate as tick } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { JS_ENTROPY_SOCKETS } from '../../src/constants.js';
import { totalDrops } from '../../src/dataplane/counters.js';
import { systemClock } from '../../src/clock.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';
import { JsEngine } from '../../src/dataplane/js_engine.js';
import { isWeftError } from '../../src/errors.js';
import { DgramUdp } from '../../src/host/dgram_udp.js';
import { parseCidr, parseIp } from '../../src/net/ipv4.js';
import { type Peer, RouteTable } from '../../src/routes/route_table.js';
import { isValidIpv4 } from '../../src/wire/ipv4_packet.js';
import { MemoryNetwork, MemoryTun } from '../harness/memory_dataplane.js';
import { gpe, icmpEcho, ipv4, udpPacket } from '../harness/packets.js';

const net = parseCidr('198.19.0.0/16');
const MTU = 1464;

interface Node {
  engine: JsEngine;
  tun: MemoryTun;
  ip: string;
}

const engines: JsEngine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
});

function peerOf(i: number): Peer {
  return { subnet: parseCidr(`198.19.${i}.0/24`), node: `n${i}`, ip: parseIp(`198.18.0.${i}`), port: 4790 };
}

async function node(network: MemoryNetwork, i: number, peers: number[], vni = 1): Promise<Node> {
  const ip = `198.18.0.${i}`;
  const tun = new MemoryTun();
  const cfg = { self: parseCidr(`198.19.${i}.0/24`), tunAddr: parseIp(`198.19.${i}.0`), vni, port: 4790, bindIp: parseIp(ip), mtu: MTU, wireguard: { privateKey: generateKeyPair().privateKey, port: 51820 }, clock: systemClock };
  const engine = new JsEngine(cfg, tun, network.transport(ip, 4790), RouteTable.build(net, 24, peers.map(peerOf)), (port) => network.transport(ip, port));
  engines.push(engine);
  await engine.start();
  return { engine, tun, ip };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

describe('js engine (in-memory TUN and network)', () => {
  it('carries packets between two nodes in VXLAN-GPE, unchanged, both ways', async () => {
    const network = new MemoryNetwork();
    const a = await node(network, 1, [2]);
    const b = await node(network, 2, [1]);
    const sizes = [20, 28, 100, 1400, MTU];
    const packets = sizes.map((s) => ipv4({ src: '198.19.1.5', dst: '198.19.2.7', payload: Buffer.alloc(s - 20, s & 0xff) }));
    a.tun.inject(packets);
    await settle();
    expect(b.tun.written).toEqual(packets);
    expect(network.sent.map((d) => d.data.subarray(0, 8).toString('hex'))).toEqual(sizes.map(() => '0c00000100000100'));
    expect(network.sent.every((d) => d.to === '198.18.0.2' && d.port === 4790)).toBe(true);
    b.tun.inject([icmpEcho('198.19.2.7', '198.19.1.5')]);
    await settle();
    expect(a.tun.written).toEqual([icmpEcho('198.19.2.7', '198.19.1.5')]);
    expect(a.engine.counters()).toMatchObject({ inside_packets: 5, inside_bytes: sizes.reduce((x, y) => x + y), outside_packets: 1 });
    expect(b.engine.counters()).toMatchObject({ outside_packets: 5, inside_packets: 1 });
  });

  it('counts a packet longer than the MTU, cut by the TUN read, as a read error and sends nothing of it', async () => {
    const network = new MemoryNetwork();
    const a = await node(network, 1, [2]);
    const long = ipv4({ src: '198.19.1.5', dst: '198.19.2.7', payload: Buffer.alloc(MTU + 100 - 20, 7) });
    const fits = ipv4({ src: '198.19.1.5', dst: '198.19.2.7', payload: Buffer.alloc(MTU - 20, 8) });
    a.tun.inject([long, fits]);
    await settle();
    expect(a.engine.counters()).toMatchObject({ inside_drop_read_error: 1, inside_drop_malformed: 0, inside_packets: 1 });
    expect(network.sent.map((d) => d.data.length)).toEqual([MTU + 8]);
  });

  it('answers a destination no node owns with ICMP net-unreachable from its TUN address', async () => {
    const network = new MemoryNetwork();
    const a = await node(network, 1, [2]);
    const probe = udpPacket('198.19.1.5', '198.19.9.9', 1234, 80);
    a.tun.inject([probe, icmpEcho('198.19.1.5', '10.1.2.3')]);
    expect(a.tun.written).toHaveLength(2);
    const icmp = a.tun.written[0]!;
    expect(isValidIpv4(icmp, 0, icmp.length)).toBe(true);
    expect([icmp[20], icmp[21]]).toEqual([3, 0]);
    expect(icmp.readUInt32BE(12)).toBe(parseIp('198.19.1.0'));
    expect(icmp.readUInt32BE(16)).toBe(parseIp('198.19.1.5'));
    expect(a.engine.counters()).toMatchObject({ inside_drop_no_route: 2, inside_icmp_unreachable: 2 });
    expect(network.sent).toHaveLength(0);
  });

  it('drops and counts by reason everything a receiver must refuse, and keeps forwarding', async () => {
    const network = new MemoryNetwork();
    const b = await node(network, 2, [1, 3]);
    const good = ipv4({ src: '198.19.1.5', dst: '198.19.2.7' });
    const from1 = (data: Buffer): void => network.inject('198.18.0.1', '198.18.0.2', 4790, data);
    from1(Buffer.alloc(3));
    from1(gpe(good, 1, 0x08));
    from1(gpe(good, 1, 0x0d));
    from1(gpe(good, 99));
    from1(gpe(good, 1, 0x0c, 2));
    network.inject('198.18.0.77', '198.18.0.2', 4790, gpe(good));
    from1(gpe(good.subarray(0, 10)));
    from1(gpe(ipv4({ src: '198.19.3.5', dst: '198.19.2.7' })));
    from1(gpe(ipv4({ src: '198.19.1.5', dst: '198.19.4.7' })));
    from1(gpe(ipv4({ src: '198.19.1.5', dst: '198.19.2.7', ttl: 0 })));
    from1(gpe(good));
    await settle();
    expect(b.engine.counters()).toMatchObject({
      outside_drop_short: 1,
      outside_drop_bad_flags: 2,
      outside_drop_vni: 1,
      outside_drop_next_proto: 1,
      outside_drop_unknown_sender: 1,
      outside_drop_malformed: 1,
      outside_drop_spoofed_source: 1,
      outside_drop_not_local: 1,
      outside_drop_ttl: 1,
      outside_packets: 1,
    });
    expect(b.tun.written).toEqual([good]);
  });

  it('survives random datagrams and random TUN packets, accounting for every one', async () => {
    const network = new MemoryNetwork();
    const b = await node(network, 2, [1]);
    let seed = 42;
    const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const N = 2000;
    for (let i = 0; i < N; i++) {
      const d = Buffer.alloc(rnd() % 80);
      for (let j = 0; j < d.length; j++) d[j] = rnd() & 0xff;
      if (i % 2 && d.length > 8) d[0] = 0x0c;
      network.inject('198.18.0.1', '198.18.0.2', 4790, d);
    }
    const junk = Array.from({ length: N }, () => {
      const d = Buffer.alloc(1 + (rnd() % 60));
      for (let j = 0; j < d.length; j++) d[j] = rnd() & 0xff;
      return d;
    });
    b.tun.inject(junk);
    await settle();
    const c = b.engine.counters();
    expect(totalDrops(c, 'outside') + c.outside_packets).toBe(N);
    expect(totalDrops(c, 'inside') + c.inside_packets).toBe(N);
  });

  it('refuses a WireGuard port it cannot bind with WEFT_HOST_SETUP naming the port', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
    const port = taken.address().port;
    try {
      const cfg = { self: parseCidr('198.19.1.0/24'), tunAddr: parseIp('198.19.1.0'), vni: 1, port: 4790, bindIp: parseIp('127.0.0.1'), mtu: MTU, wireguard: { privateKey: generateKeyPair().privateKey, port }, clock: systemClock };
      const engine = new JsEngine(cfg, new MemoryTun(), new MemoryNetwork().transport('198.18.0.1', 4790), RouteTable.empty(net, 24), (p) => new DgramUdp('127.0.0.1', p, 0));
      engines.push(engine);
      await engine.start();
      const fds = readdirSync('/proc/self/fd').length;
      for (let i = 0; i < 3; i++) {
        const err = await engine.enableWireguard(MTU).catch((e: unknown) => e);
        expect(isWeftError(err, 'WEFT_HOST_SETUP')).toBe(true);
        expect((err as Error).message).toMatch(new RegExp(`^cannot open the WireGuard port ${port}: .*EADDRINUSE`));
      }
      expect(readdirSync('/proc/self/fd').length).toBe(fds); // weftd retries each config poll: no socket left behind
    } finally {
      taken.close();
    }
  });

  it('closes a WireGuard port whose bind finished after the engine closed: the port is free again', async () => {
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const port = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const cfg = { self: parseCidr('198.19.1.0/24'), tunAddr: parseIp('198.19.1.0'), vni: 1, port: 4790, bindIp: parseIp('127.0.0.1'), mtu: MTU, wireguard: { privateKey: generateKeyPair().privateKey, port }, clock: systemClock };
    const engine = new JsEngine(cfg, new MemoryTun(), new MemoryNetwork().transport('198.18.0.1', 4790), RouteTable.empty(net, 24), (p) => new DgramUdp('127.0.0.1', p, 0));
    await engine.start();
    const enabling = engine.enableWireguard(MTU);
    await engine.close();
    await enabling;
    const again = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.bind(port, '127.0.0.1', resolve);
      });
    } finally {
      again.close();
    }
  });

  it('applies a new table to the next packet', async () => {
    const network = new MemoryNetwork();
    const a = await node(network, 1, []);
    const pkt = icmpEcho('198.19.1.5', '198.19.3.3');
    a.tun.inject([pkt]);
    expect(a.engine.counters().inside_drop_no_route).toBe(1);
    a.engine.setRoutes(RouteTable.build(net, 24, [peerOf(3)]));
    a.tun.inject([pkt]);
    expect(network.sent.map((d) => d.to)).toEqual(['198.18.0.3']);
    a.engine.setRoutes(RouteTable.build(net, 24, []));
    a.tun.inject([pkt]);
    expect(a.engine.counters()).toMatchObject({ inside_packets: 1, inside_drop_no_route: 2 });
  });

  it('spreads flows over its source sockets by flow hash, one flow on one socket', async () => {
    const network = new MemoryNetwork();
    const a = await node(network, 1, [2]);
    const flows = Array.from({ length: 64 }, (_, i) => udpPacket('198.19.1.5', '198.19.2.2', 1000 + i, 53));
    a.tun.inject([...flows, ...flows]);
    // DgramUdp sends from socket hash % JS_ENTROPY_SOCKETS: the sockets the flows land on.
    const sockets = network.sent.map((d) => d.hash % JS_ENTROPY_SOCKETS);
    expect(sockets.slice(64)).toEqual(sockets.slice(0, 64));
    expect(new Set(sockets).size).toBe(JS_ENTROPY_SOCKETS);
  });
});
