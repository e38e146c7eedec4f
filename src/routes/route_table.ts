// The forwarding table: an immutable snapshot mapping each subnet of the
// cluster network to the node that leases it. Built whole by the control
// plane and swapped into an engine whole; lookups are O(1) and allocate nothing.

import { MAX_SUBNET_BITS, PEER_HAS_KEY, PEER_TCP_CSUM_PARTIAL, PEER_WIREGUARD } from '../constants.js';
import { WeftError } from '../errors.js';
import { type Cidr, cidrEquals, contains, formatCidr, maskOf } from '../net/ipv4.js';

/** One remote node, as its lease describes it. */
export interface Peer {
  readonly subnet: Cidr;
  readonly node: string;
  /** Underlay IPv4 address, as an unsigned 32-bit integer. */
  readonly ip: number;
  readonly port: number;
  /** Takes inner TCP checksums left partial (its lease lists FEATURE_TCP_CSUM_PARTIAL). */
  readonly tcpCsumPartial?: boolean;
  /** Its WireGuard public key (32 bytes), when its lease publishes one. */
  readonly wgKey?: Uint8Array;
  /** Its WireGuard UDP port (from the lease, or the default). */
  readonly wgPort?: number;
}

/**
 * What this node's encryption setting makes of the peers: with `wireguard`
 * (this node publishes its key), every peer that publishes one too is
 * spoken to in WireGuard only (PEER_WIREGUARD); with `plaintextRefused`
 * (wireguard-only), nobody is spoken to in VXLAN-GPE.
 */
export interface TableEncryption {
  readonly wireguard: boolean;
  readonly plaintextRefused: boolean;
}

export const NO_ENCRYPTION: TableEncryption = { wireguard: false, plaintextRefused: false };

export const NO_PEER = -1;

/** A route table as flat arrays: what the native engine takes (RouteTable.arrays()). */
export interface RouteArrays {
  netBase: number;
  netLen: number;
  subnetLen: number;
  /** wireguard-only: VXLAN-GPE with no one. */
  plaintextRefused: boolean;
  slots: Int32Array;
  peerIp: Uint32Array;
  peerPort: Uint16Array;
  /** Each peer's WireGuard port (0: it publishes no key). */
  peerWgPort: Uint16Array;
  peerFlags: Uint8Array;
}

export class RouteTable {
  readonly network: Cidr;
  readonly subnetLen: number;
  readonly peers: readonly Peer[];
  readonly encryption: TableEncryption;
  /** Subnet slot -> index into peers, or NO_PEER. */
  private readonly slots: Int32Array;
  private readonly peerIp: Uint32Array;
  private readonly peerPort: Uint16Array;
  private readonly peerWgPort: Uint16Array;
  /** PEER_* flag bits of each peer (constants.ts). */
  private readonly peerFlags: Uint8Array;
  /** The peers' underlay IPs and their shared flags, for the js engine's sender checks: built at its first check (a control plane rebuilding tables for every change never needs it). */
  private senders: Map<number, number> | undefined;
  private readonly netMask: number;
  private readonly shift: number;

  /**
   * The arrays are left zero, for build() and with() to fill. They share one
   * ArrayBuffer: each one is a separate allocation outside the JS heap, which
   * V8 accounts (and collects) far more slowly than heap objects, and a
   * control plane makes a table for every change.
   */
  private constructor(network: Cidr, subnetLen: number, peers: readonly Peer[], encryption: TableEncryption) {
    this.network = network;
    this.subnetLen = subnetLen;
    this.peers = peers;
    this.encryption = encryption;
    this.netMask = maskOf(network.len);
    this.shift = 32 - subnetLen;
    const slotCount = 2 ** (subnetLen - network.len);
    const n = peers.length;
    const buf = new ArrayBuffer(slotCount * 4 + n * 9);
    this.slots = new Int32Array(buf, 0, slotCount);
    this.peerIp = new Uint32Array(buf, slotCount * 4, n);
    this.peerPort = new Uint16Array(buf, slotCount * 4 + n * 4, n);
    this.peerWgPort = new Uint16Array(buf, slotCount * 4 + n * 6, n);
    this.peerFlags = new Uint8Array(buf, slotCount * 4 + n * 8, n);
  }

  private slotOf(subnet: Cidr): number {
    return ((subnet.base - this.network.base) >>> 0) >>> this.shift;
  }

  private setPeer(i: number, p: Peer): void {
    this.peerIp[i] = p.ip;
    this.peerPort[i] = p.port;
    this.peerWgPort[i] = p.wgPort ?? 0;
    const keyed = p.wgKey !== undefined;
    this.peerFlags[i] = (p.tcpCsumPartial === true ? PEER_TCP_CSUM_PARTIAL : 0) | (keyed ? PEER_HAS_KEY : 0) | (this.encryption.wireguard && keyed ? PEER_WIREGUARD : 0);
  }

  /**
   * Builds a table; every peer's subnet must be a `subnetLen` subnet of
   * `network`, and no two peers may share one (the registry guarantees both;
   * a violation here is a bug, reported with the subnet).
   */
  static build(network: Cidr, subnetLen: number, peers: readonly Peer[], encryption: TableEncryption = NO_ENCRYPTION): RouteTable {
    if (subnetLen <= network.len || subnetLen - network.len > MAX_SUBNET_BITS || subnetLen > 32) {
      throw new WeftError('WEFT_CONFIG_INVALID', `subnet length /${subnetLen} does not fit network ${formatCidr(network)} (at most ${MAX_SUBNET_BITS} bits apart)`, { network: formatCidr(network), subnetLen });
    }
    const t = new RouteTable(network, subnetLen, peers, encryption);
    t.slots.fill(NO_PEER);
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      t.checkShape(p);
      const slot = t.slotOf(p.subnet);
      if (t.slots[slot] !== NO_PEER) throw new WeftError('WEFT_CONFIG_INVALID', `two peers claim ${formatCidr(p.subnet)}`, { subnet: formatCidr(p.subnet) });
      t.slots[slot] = i;
      t.setPeer(i, p);
    }
    return t;
  }

  /**
   * This table with the peers of `removed` subnets gone and `added` peers in
   * (replacing any peer on the same subnet): equal to a build() of the
   * result, up to the order of peers. It copies the flat arrays and touches
   * only the changed peers, where a build() reads every peer: a node with
   * thousands of peers pays per change, not per peer.
   */
  with(removed: Iterable<Cidr>, added: Iterable<Peer>): RouteTable {
    const peers = [...this.peers];
    /** Slots whose peer index differs from this table's. */
    const moved = new Map<number, number>();
    const at = (slot: number): number | undefined => moved.get(slot) ?? this.slots[slot];
    const drop = (subnet: Cidr): void => {
      const slot = this.slotOf(subnet);
      const i = at(slot);
      // Not a peer of this table (another length, outside the network, never added): nothing to drop.
      if (i === undefined || i === NO_PEER || !cidrEquals(peers[i]!.subnet, subnet)) return;
      moved.set(slot, NO_PEER);
      const last = peers.pop()!;
      if (i < peers.length) {
        peers[i] = last;
        moved.set(this.slotOf(last.subnet), i);
      }
    };
    for (const subnet of removed) drop(subnet);
    for (const p of added) {
      this.checkShape(p);
      const slot = this.slotOf(p.subnet);
      const i = at(slot)!;
      if (i !== NO_PEER) peers[i] = p;
      else {
        moved.set(slot, peers.length);
        peers.push(p);
      }
    }
    const t = new RouteTable(this.network, this.subnetLen, peers, this.encryption);
    t.slots.set(this.slots);
    for (const [slot, i] of moved) t.slots[slot] = i;
    for (let i = 0; i < peers.length; i++) {
      if (i < this.peers.length && peers[i] === this.peers[i]) {
        t.peerIp[i] = this.peerIp[i]!;
        t.peerPort[i] = this.peerPort[i]!;
        t.peerWgPort[i] = this.peerWgPort[i]!;
        t.peerFlags[i] = this.peerFlags[i]!;
      } else t.setPeer(i, peers[i]!);
    }
    return t;
  }

  private checkShape(p: Peer): void {
    if (p.subnet.len !== this.subnetLen || !contains(this.network, p.subnet.base)) {
      throw new WeftError('WEFT_CONFIG_INVALID', `peer ${p.node} subnet ${formatCidr(p.subnet)} is not a /${this.subnetLen} of ${formatCidr(this.network)}`, { node: p.node });
    }
  }

  static empty(network: Cidr, subnetLen: number): RouteTable {
    return RouteTable.build(network, subnetLen, []);
  }

  /** The table as flat arrays, for the native engine (which copies them). */
  arrays(): RouteArrays {
    return {
      netBase: this.network.base,
      netLen: this.network.len,
      subnetLen: this.subnetLen,
      plaintextRefused: this.encryption.plaintextRefused,
      slots: this.slots,
      peerIp: this.peerIp,
      peerPort: this.peerPort,
      peerWgPort: this.peerWgPort,
      peerFlags: this.peerFlags,
    };
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

  peerFlagsAt(i: number): number {
    return this.peerFlags[i]!;
  }

  /** The PEER_* bits every peer at underlay address `outerSrc` shares, as the native table keeps them; undefined when it is no peer's. */
  flagsOfSender(outerSrc: number): number | undefined {
    return this.senderFlags().get(outerSrc);
  }

  private senderFlags(): Map<number, number> {
    if (!this.senders) {
      this.senders = new Map();
      for (let i = 0; i < this.peerIp.length; i++) {
        const ip = this.peerIp[i]!;
        const known = this.senders.get(ip);
        // One node's leases should agree; if not, the safe subset (native/routes.cc does the same).
        this.senders.set(ip, known === undefined ? this.peerFlags[i]! : known & this.peerFlags[i]!);
      }
    }
    return this.senders;
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
