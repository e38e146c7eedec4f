// What `weftctl check` looks at, gathered once before any check runs: weftd's
// /status, the subnet file, the host's links and firewall, echo probes of
// the peers, and etcd. The checks (checks.ts) are pure functions of these
// facts; gather.ts collects them on the real host, tests write them by hand.

import { errorMessage } from '../errors.js';
import type { LinkInfo } from '../host/netconf.js';
import type { PingResult } from '../host/ping.js';
import type { RulesetState } from '../host/firewall.js';
import { type SubnetFile, parseSubnetFile } from '../host/subnet_env.js';
import type { DaemonStatus } from '../observe/status.js';
import type { MemberStatus } from '../registry/etcd_registry.js';

/** A fact, or why it could not be gathered. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

type NoSubnetFile = { readonly held?: undefined; readonly none?: undefined };
/** What the subnet file says (the subnet held, or that the node holds none); or that it is absent; or why it does not parse. */
export type SubnetFileFact = SubnetFile | (NoSubnetFile & { readonly absent: true }) | (NoSubnetFile & { readonly invalid: string });

/** The subnet file's text (null: it does not exist) as the facts hold it, parsed once here by the CNI plugin's own parser. */
export function subnetFileFact(text: string | null, path: string): SubnetFileFact {
  if (text === null) return { absent: true };
  try {
    return parseSubnetFile(text, path);
  } catch (err) {
    return { invalid: errorMessage(err) };
  }
}

export interface CheckFacts {
  /** When the facts were gathered (ms since the epoch): what times found in them are compared with. */
  readonly nowMs: number;
  /** The bridge pods attach to (--bridge). */
  readonly bridge: string;
  /** The subnet file looked at: --subnet-file when given, else the one weftd writes. */
  readonly subnetFilePath: string;
  readonly weftd: Outcome<DaemonStatus>;
  /** The subnet file, parsed; an error when it cannot be read. */
  readonly subnetFile: Outcome<SubnetFileFact>;
  readonly links: Outcome<readonly LinkInfo[]>;
  /** net.ipv4.ip_forward; undefined when it cannot be read. */
  readonly ipForward: boolean | undefined;
  /** weft's firewall rules as the host holds them; undefined when not looked at (nothing known to compare with). */
  readonly encapFilter?: Outcome<RulesetState>;
  readonly ipMasq?: Outcome<RulesetState>;
  /** Echo probes of the peers' overlay addresses, in /status's peer order (undefined: not probed in time); undefined when not probed at all. */
  readonly probes?: Outcome<readonly (PingResult | undefined)[]>;
  /** Undefined when etcd was not asked (no weftd flags known to reach it). */
  readonly etcd?: Outcome<EtcdFacts>;
}

/** One endpoint's member, or why it did not answer; refused: it turned weftctl away (TLS, user, permissions), which retrying will not fix. */
export type MemberFacts = { readonly endpoint: string } & ({ readonly status: MemberStatus } | { readonly error: string; readonly refused: boolean });

export interface EtcdFacts {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** One per endpoint, in the order given. */
  readonly members: readonly MemberFacts[];
  /** weft's keys for this node, read through the cluster; an error when they could not be read. */
  readonly data: Outcome<EtcdData>;
}

export interface EtcdLease {
  readonly subnet: string;
  readonly node: string;
  readonly publicIp: string;
  /** Seconds left on its etcd lease; -1 when it has none (a key without TTL) or it expired. */
  readonly ttlS: number;
}

export interface EtcdData {
  readonly config: { readonly network: string; readonly subnetLen: number; readonly vni: number; readonly port: number } | null;
  /** The leases of the subnets weftd and the subnet file name, and those under weftd's node name. */
  readonly leases: readonly EtcdLease[];
}
