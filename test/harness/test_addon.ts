// Loads the test addon (native/build/Release/weft_test.node, built beside
// weft.node by `npm run build:native`) and types what it exports: the entry
// points into the native per-packet and offload code that only tests and
// benchmarks call, so that weftd's addon ships none of them.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { NativeRoutes, NativeWireguard } from '../../src/host/addon.js';

/** A keypair as wgAccept takes it. */
export interface TestKeypair {
  localIndex: number;
  remoteIndex: number;
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  initiator: boolean;
  peerIp: number;
  peerPort: number;
  /** How long ago it was made (sessions past 180 s are refused). */
  createdAgoMs: number;
}

export interface WeftTestAddon {
  /** The numbers both sides must agree on; the differential test holds them equal to the TypeScript constants. */
  readonly CONSTANTS: { maxTsoSegments: number; gpeHeaderLen: number; encapOverhead: number; icmpErrorMax: number; icmpBurst: number; icmpPerSecond: number; peerTcpCsumPartial: number };
  /**
   * No I/O: runs the native per-packet decision on each
   * packet. direction 0 (inside): classify_inside's verdict (peer index, -1
   * drop, -2 unreachable); 1 (outside): 1 accepted, 0 dropped. Drops are
   * counted into `counters` (one block).
   */
  classifyBatch(
    direction: 0 | 1,
    routes: NativeRoutes,
    self: { base: number; len: number; vni: number },
    packets: Buffer[],
    outerSrc: Uint32Array,
    counters: BigUint64Array,
  ): Int32Array;
  /** bench/encap.ts's native row: ns per packet of classify + encapsulate + accept, over `iterations` passes. */
  benchEncap(routes: NativeRoutes, self: { base: number; len: number; vni: number }, packets: Buffer[], outerSrc: Uint32Array, iterations: number): number;

  // native/offload_binding.cc: direct access to the offload code the native
  // engine runs, for the unit tests. They allocate per call.

  /**
   * tso_segment() over a buffer holding a 10-byte virtio_net_hdr and the
   * packet after it: the segments (without their headroom), or null when
   * refused. `stride` is the distance between segments in the native output;
   * headroomIntact tells that nothing outside the segments was written.
   * maxSegs and outCap default to "large enough".
   */
  tsoSegment(
    vnetHdrAndPacket: Buffer,
    headroom: number,
    maxSegs?: number,
    outCap?: number,
  ): (Buffer[] & { stride: number; headroomIntact: boolean }) | null;
  /** tso_headers(), the engine's splitter: each segment as its headers followed by its payload slice, or null when refused; partial: TCP checksums left partial. */
  tsoHeaders(vnetHdrAndPacket: Buffer, maxSegs?: number, partial?: boolean): Buffer[] | null;
  /** wire.h write_icmp_unreachable() for an IPv4 packet (at least 20 bytes), for the differential test. */
  icmpUnreachable(packet: Buffer, from: number, code: number, mtu: number): Buffer;
  /** wire.h flow_hash() of an IPv4 packet (at least 20 bytes), for the differential test. */
  flowHash(packet: Buffer): number;
  /** complete_checksum() in place: false (packet untouched) when the offsets do not fit. */
  completeChecksum(packet: Buffer, csumStart: number, csumOffset: number): boolean;
  /** Feeds the IPv4 packets through a TcpCoalescer (partial: as from a peer that leaves TCP checksums partial): what would be written to the TUN, each with its vnet header. */
  coalesce(packets: Buffer[], partial?: boolean): Buffer[];

  // native/wg_test_binding.cc: the native WireGuard per-packet code, no I/O.

  /** The transport message the workers seal `packet` into (wg_seal_in_place); throws ERR_WEFT_SEAL when wg_seal of it in pieces differs. */
  wgSeal(key: Uint8Array, receiverIndex: number, counter: number, packet: Buffer, padLimit: number): Buffer;
  /**
   * Each received buffer split into datagrams as a worker splits a UDP GRO
   * train (segments[i]: its segment size; absent or 0: one datagram; an
   * empty buffer is one empty datagram), each through accept_wireguard from
   * its buffer's outer source, in order (one replay window per keypair
   * across the call; datagrams decrypted in place): per datagram [verdict,
   * inner length], verdict 0 dropped, 1 a handshake message for JS, 2 a
   * keepalive, 3 data. Drops counted into one block.
   */
  wgAccept(
    routes: NativeRoutes,
    wireguard: NativeWireguard & { keypairs: TestKeypair[] },
    self: { base: number; len: number },
    buffers: Buffer[],
    outerSrc: Uint32Array,
    counters: BigUint64Array,
    segments?: Uint32Array,
): Int32Array;
}

const TEST_ADDON_PATH = fileURLToPath(new URL('../../native/build/Release/weft_test.node', import.meta.url));

let testAddon: WeftTestAddon | undefined;

/** The test addon, loaded once. Throws when it is not built, naming the command that builds it. */
export function loadTestAddon(): WeftTestAddon {
  if (testAddon !== undefined) return testAddon;
  try {
    testAddon = createRequire(import.meta.url)(TEST_ADDON_PATH) as WeftTestAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`cannot load the test addon ${TEST_ADDON_PATH}: ${reason}; run \`npm run build:native\``, { cause: err });
  }
  return testAddon;
}
