// Numbers other implementations depend on (specification) and numbers that
// are ours to tune (implementation), kept apart so nobody tunes the former.

// ---- Specification constants (docs/architecture.md "Wire format", docs/etcd.md "etcd schema"; changing them breaks the wire or the etcd schema)

/** IANA port for VXLAN-GPE. */
export const DEFAULT_UDP_PORT = 4790;
export const DEFAULT_VNI = 1;
export const VXLAN_GPE_HEADER_LEN = 8;
/** Outer IPv4 (20) + UDP (8) + VXLAN-GPE (8). */
export const ENCAP_OVERHEAD = 20 + 8 + VXLAN_GPE_HEADER_LEN;
/** Flags byte: I (VNI valid) | P (next protocol present), version 0. */
export const GPE_FLAGS = 0x0c;
export const GPE_FLAG_I = 0x08;
export const GPE_FLAG_P = 0x04;
export const GPE_FLAG_O = 0x01;
export const GPE_VERSION_MASK = 0x30;
export const GPE_NEXT_PROTO_IPV4 = 0x01;
export const DEFAULT_ETCD_PREFIX = '/weft';
export const DEFAULT_NETWORK = '10.244.0.0/16';
export const DEFAULT_SUBNET_LEN = 24;
/**
 * The network config's `encryption` (proto/weft.proto): off stores "", so a
 * config without encryption reads as it did before the field existed.
 */
export const ENCRYPTION_MODES = ['off', 'wireguard', 'wireguard-only'] as const;
export type EncryptionMode = (typeof ENCRYPTION_MODES)[number];

// ---- Implementation constants (ours to tune)

export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';
export const DEFAULT_TUN_NAME = 'weft0';
/** Where weftd serves /metrics, /healthz, /readyz, /status, and where weftctl status asks. */
export const DEFAULT_METRICS_ADDR = '127.0.0.1:9474';
export const DEFAULT_SUBNET_FILE = '/run/weft/subnet.env';
export const DEFAULT_STATE_DIR = '/var/lib/weft';
/** How often weftd probes etcd, by reading the network config: which is also how soon it follows a change of `encryption`. */
export const ETCD_PROBE_MS = 5000;
/** flannel's default lease TTL: a day. Renewed at a third of it. */
export const DEFAULT_LEASE_TTL_S = 24 * 3600;
/** Largest number of subnet slots a route table holds (network len to subnet len <= 20 bits). */
export const MAX_SUBNET_BITS = 20;
/** Segments of one TSO super-packet the native engine splits (native/dataplane.h kMaxSegs; the differential test holds them equal). */
export const NATIVE_MAX_TSO_SEGMENTS = 64;
/**
 * Lease feature (proto/weft.proto, SubnetLease.features): this node takes
 * inner TCP checksums left partial from a node that lists it too. Listed by
 * the native engine with vnet headers, which writes such packets to its TUN
 * as CHECKSUM_PARTIAL.
 */
export const FEATURE_TCP_CSUM_PARTIAL = 'tcp-csum-partial';
/** Peer flag bits of the route table's peerFlags (native/routes.h, kPeerTcpCsumPartial). */
export const PEER_TCP_CSUM_PARTIAL = 1;
/** Both this node and the peer publish WireGuard keys: the pair speaks WireGuard only (native/routes.h, kPeerWireguard). */
export const PEER_WIREGUARD = 2;
/** The peer's lease publishes a WireGuard key: its handshake messages are taken (native/routes.h, kPeerHasKey). */
export const PEER_HAS_KEY = 4;
/**
 * rtm_protocol of the routes the kernel engine installs (`ip route show
 * proto 87`): how a restarted weftd tells its own routes from anybody
 * else's. No routing daemon iproute2 knows of uses it.
 */
export const KERNEL_ROUTE_PROTOCOL = 87;
/** Packets read from the TUN per batch in the js engine. */
export const JS_TUN_BATCH = 64;
/** UDP sockets the js engine spreads flows over, for source-port entropy. */
export const JS_ENTROPY_SOCKETS = 8;
