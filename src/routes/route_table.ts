// The forwarding table: an immutable snapshot mapping each subnet of the
// cluster network to the node that leases it. Built whole by the control
// plane and swapped into an engine whole; lookups are O(1) and allocate nothing.

import { MAX_SUBNET_BITS, PEER_TCP_CSUM_PARTIAL } from '../constants.js';
import { WeftError } from '../errors.js';
import { type Cidr, contains, formatCidr, maskOf, subnetIndexOf } from '../net/ipv4.js';

/** One remote node, as its lease describes it. */
export interface Peer {
  readonly subnet: Cidr;
  readonly node: string;
  /** Underlay IPv4 address, as an unsigned 32-bit integer. */
  readonly ip: number;
  readonly port: number;
  /** Takes inner TCP checksums left partial (its lease lists FEATURE_TCP_CSUM_PARTIAL). */
  readonly tcpCsumPartial?: boolean;
}

export const NO_PEER = -1;

export class RouteTable {
  readonly network: Cidr;
  readonly subnetLen: number;
  readonly peers: readonly Peer[];
  /** Subnet slot -> index into peers, or NO_PEER. */
  private readonly slots: Int32Array;
  private readonly peerIp: Uint32Array;
  private readonly peerPort: Uint16Array;
  /** PEER_* flag bits of each peer (constants.ts); only the native engine acts on them. */
  private readonly peerFlags: Uint8Array;
  /** Underlay IP -> a peer index with that IP, for sender checks. */
  private readonly byIp: Map<number, number>;
  private readonly netMask: number;
  private readonly shift: number;

  private constructor(network: Cidr, subnetLen: number, peers: readonly Peer[]) {
    this.network = network;
    this.subnetLen = subnetLen;
    this.peers = peers;
    this.netMask = maskOf(network.len);
    this.shift = 32 - subnetLen;
    this.slots = new Int32Array(2 ** (subnetLen - network.len)).fill(NO_PEER);
    this.peerIp = new Uint32Array(peers.length);
    this.peerPort = new Uint16Array(peers.length);
    this.peerFlags = new Uint8Array(peers.length);
    this.byIp = new Map();
    peers.forEach((p, i) => {
      this.slots[subnetIndexOf(network, subnetLen, p.subnet.base)] = i;
      this.peerIp[i] = p.ip;
      this.peerPort[i] = p.port;
      this.peerFlags[i] = p.tcpCsumPartial === true ? PEER_TCP_CSUM_PARTIAL : 0;
      this.byIp.set(p.ip, i);
    });
  }

  /**
   * Builds a table; every peer's subnet must be a `subnetLen` subnet of
   * `network`, and no two peers may share one (the registry guarantees both;
   * a violation here is a bug, reported with the subnet).
   */
  static build(network: Cidr, subnetLen: number, peers: readonly Peer[]): RouteTable {
    if (subnetLen <= network.len || subnetLen - network.len > MAX_SUBNET_BITS || subnetLen > 32) {
      throw new WeftError('WEFT_CONFIG_INVALID', `subnet length /${subnetLen} does not fit network ${formatCidr(network)} (at most ${MAX_SUBNET_BITS} bits apart)`, { network: formatCidr(network), subnetLen });
    }
    const seen = new Set<number>();
    for (const p of peers) {
      if (p.subnet.len !== subnetLen || !contains(network, p.subnet.base)) {
        throw new WeftError('WEFT_CONFIG_INVALID', `peer ${p.node} subnet ${formatCidr(p.subnet)} is not a /${subnetLen} of ${formatCidr(network)}`, { node: p.node });
      }
      if (seen.has(p.subnet.base)) {
        throw new WeftError('WEFT_CONFIG_INVALID', `two peers claim ${formatCidr(p.subnet)}`, { subnet: formatCidr(p.subnet) });
      }
      seen.add(p.subnet.base);
    }
    return new RouteTable(network, subnetLen, peers);
  }

  static empty(network: Cidr, subnetLen: number): RouteTable {
    return RouteTable.build(network, subnetLen, []);
  }

  /** The table as flat arrays, for the native engine (which copies them). */
  arrays(): { netBase: number; netLen: number; subnetLen: number; slots: Int32Array; peerIp: Uint32Array; peerPort: Uint16Array; peerFlags: Uint8Array } {
    return { netBase: this.network.base, netLen: this.network.len, subnetLen: this.subnetLen, slots: this.slots, peerIp: this.peerIp, peerPort: this.peerPort, peerFlags: this.peerFlags };
  }

  /** The peer index owning `ip`, or NO_PEER (also for addresses outside the network). */
  lookup(ip: number): number {
    if (((ip & this.netMask) >>> 0) !== this.network.base) return NO_PEER;
    return this.slots[((ip - this.network.base) >>> 0) >>> this.shift]!;
  }

  peerPortAt(i: number): number {
    return this.peerPort[i]!;
  }

  peerIpAt(i: number): number {
    return this.peerIp[i]!;
  }

  /** True when `outerSrc` is the underlay address of some peer. */
  isKnownSender(outerSrc: number): boolean {
    return this.byIp.has(outerSrc);
  }

  /**
   * True when `innerSrc` may come from the node at `outerSrc`: an address in
   * a subnet it leases, or its own underlay address (a node answering a pod
   * that reached it, or its hostPort, replies from that address).
   */
  senderOwns(outerSrc: number, innerSrc: number): boolean {
    if (innerSrc === outerSrc) return true;
    const i = this.lookup(innerSrc);
    return i !== NO_PEER && this.peerIp[i] === outerSrc;
  }
}
