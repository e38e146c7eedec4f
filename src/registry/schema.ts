// The etcd value schema (proto/weft.proto) and its strict proto3-JSON codec:
// every value read from etcd is validated here, and a bad one names its key.

import protobuf from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { DEFAULT_UDP_PORT, DEFAULT_VNI, ENCRYPTION_MODES, type EncryptionMode, MAX_SUBNET_BITS } from '../constants.js';
import { WeftError, errorMessage } from '../errors.js';
import { type Cidr, formatCidr, parseCidr, parseIp, underlayAddressProblem } from '../net/ipv4.js';
import { DEFAULT_WG_PORT } from '../wireguard/constants.js';
import { isZeroKey, parseKey } from '../wireguard/keys.js';
import { treePath } from '../tree.js';

const root = protobuf.loadSync(treePath('proto/weft.proto'));
const NetworkConfigType = root.lookupType('weft.v1.NetworkConfig');
const SubnetLeaseType = root.lookupType('weft.v1.SubnetLease');

/** The cluster's network config, validated and with defaults applied. */
export interface NetworkConfig {
  readonly network: Cidr;
  readonly subnetLen: number;
  readonly vni: number;
  readonly port: number;
  readonly encryption: EncryptionMode;
  /** The nodes' WireGuard UDP port. */
  readonly wireguardPort: number;
}

/** A node's lease value, validated. */
export interface SubnetLease {
  readonly nodeName: string;
  readonly publicIp: string;
  readonly port: number;
  readonly vni: number;
  readonly version: string;
  readonly engine: string;
  /** The writing weftd process's random id; "" in leases written by hand or by older versions. */
  readonly instance: string;
  /** Dataplane features the owner accepts (FEATURE_* in constants.ts); unknown ones are ignored. Always set when decoded. */
  readonly features?: readonly string[];
  /** Its WireGuard public key (base64), or "" (absent when written by older versions): it offers VXLAN-GPE only. */
  readonly wireguardPublicKey?: string;
  /** Its WireGuard port; 0 or absent means DEFAULT_WG_PORT. */
  readonly wireguardPort?: number;
}

function parseStrict(type: protobuf.Type, key: string, text: string): Record<string, unknown> {
  try {
    const msg = protojson.fromJsonString(type, text);
    return type.toObject(msg, { defaults: true }) as Record<string, unknown>;
  } catch (err) {
    throw new WeftError('WEFT_VALUE_INVALID', `etcd key ${key}: not a valid ${type.name}: ${errorMessage(err)}`, { key });
  }
}

function invalid(key: string, what: string): WeftError {
  return new WeftError('WEFT_VALUE_INVALID', `etcd key ${key}: ${what}`, { key });
}

export interface RawNetworkConfig {
  readonly network: string;
  readonly subnetLen: number;
  readonly vni: number;
  readonly port: number;
  /** "" or "off" (off), "wireguard", "wireguard-only"; absent: off. */
  readonly encryption?: string;
  /** 0 or absent: DEFAULT_WG_PORT. */
  readonly wireguardPort?: number;
}

/**
 * Checks the cross-field rules of a network config and applies defaults;
 * `fail` turns a rule's complaint into the caller's error (a bad etcd value,
 * a bad flag).
 */
export function validateNetworkConfig(raw: RawNetworkConfig, fail: (what: string) => WeftError): NetworkConfig {
  let network: Cidr;
  try {
    network = parseCidr(raw.network);
  } catch (err) {
    throw fail(`network: ${errorMessage(err)}`);
  }
  const subnetLen = raw.subnetLen;
  if (subnetLen <= network.len || subnetLen > 30 || subnetLen - network.len > MAX_SUBNET_BITS) {
    throw fail(`subnetLen ${subnetLen} must be longer than the network's /${network.len}, at most 30, and at most ${MAX_SUBNET_BITS} bits longer`);
  }
  const vni = raw.vni === 0 ? DEFAULT_VNI : raw.vni;
  if (vni > 0xffffff) throw fail(`vni ${vni} does not fit in 24 bits`);
  const port = raw.port === 0 ? DEFAULT_UDP_PORT : raw.port;
  if (port > 65535) throw fail(`port ${port} is not a UDP port`);
  const encryption = raw.encryption === undefined || raw.encryption === '' ? 'off' : raw.encryption;
  if (!(ENCRYPTION_MODES as readonly string[]).includes(encryption)) throw fail(`encryption "${encryption}" is not one of ${ENCRYPTION_MODES.join(', ')}`);
  const wireguardPort = raw.wireguardPort === undefined || raw.wireguardPort === 0 ? DEFAULT_WG_PORT : raw.wireguardPort;
  if (wireguardPort > 65535) throw fail(`wireguardPort ${wireguardPort} is not a UDP port`);
  if (wireguardPort === port && encryption !== 'off') throw fail(`wireguardPort ${wireguardPort} is the VXLAN-GPE port too: the two need their own ports`);
  return { network, subnetLen, vni, port, encryption: encryption as EncryptionMode, wireguardPort };
}

export function decodeNetworkConfig(key: string, text: string): NetworkConfig {
  const o = parseStrict(NetworkConfigType, key, text) as unknown as RawNetworkConfig;
  return validateNetworkConfig(o, (what) => invalid(key, what));
}

/** The stored form: encryption off and the default WireGuard port are left out, so such a config is what weft wrote before they existed. */
export function encodeNetworkConfig(cfg: NetworkConfig): string {
  return protojson.toJsonString(NetworkConfigType, {
    network: formatCidr(cfg.network),
    subnetLen: cfg.subnetLen,
    vni: cfg.vni,
    port: cfg.port,
    encryption: cfg.encryption === 'off' ? '' : cfg.encryption,
    wireguardPort: cfg.wireguardPort === DEFAULT_WG_PORT ? 0 : cfg.wireguardPort,
  });
}

/** A node name is a DNS name, as Kubernetes' are: at most 253 bytes. */
export const MAX_NODE_NAME_BYTES = 253;
/** Larger than any honest lease value (a 253-byte name and short fields): a bound on what a listing can hold per key. */
export const MAX_LEASE_VALUE_BYTES = 1024;

export function decodeSubnetLease(key: string, text: string): SubnetLease {
  const size = Buffer.byteLength(text);
  if (size > MAX_LEASE_VALUE_BYTES) throw invalid(key, `value of ${size} bytes is over the ${MAX_LEASE_VALUE_BYTES}-byte limit of a lease`);
  const o = parseStrict(SubnetLeaseType, key, text) as unknown as SubnetLease;
  if (o.nodeName === '') throw invalid(key, 'nodeName is empty');
  const nameBytes = Buffer.byteLength(o.nodeName);
  if (nameBytes > MAX_NODE_NAME_BYTES) throw invalid(key, `nodeName of ${nameBytes} bytes is longer than ${MAX_NODE_NAME_BYTES}`);
  const ip = parseIp(o.publicIp);
  if (ip < 0) throw invalid(key, `publicIp "${o.publicIp}" is not an IPv4 address`);
  const problem = underlayAddressProblem(ip);
  if (problem) throw invalid(key, `publicIp ${o.publicIp} ${problem}: no node can be reached there`);
  if (o.port === 0 || o.port > 65535) throw invalid(key, `port ${o.port} is not a UDP port`);
  if (o.vni > 0xffffff) throw invalid(key, `vni ${o.vni} does not fit in 24 bits`);
  if (o.wireguardPublicKey) {
    const k = parseKey(o.wireguardPublicKey);
    if (!k) throw invalid(key, `wireguardPublicKey "${o.wireguardPublicKey}" is not the base64 of a 32-byte key (as wg pubkey prints it)`);
    if (isZeroKey(k)) throw invalid(key, 'wireguardPublicKey is all zeros');
  }
  if (o.wireguardPort !== undefined && o.wireguardPort > 65535) throw invalid(key, `wireguardPort ${o.wireguardPort} is not a UDP port`);
  return o;
}

export function encodeSubnetLease(lease: SubnetLease): string {
  return protojson.toJsonString(SubnetLeaseType, { ...lease });
}
