// Gathers `weftctl check`'s facts on the real host: weftd's /status first
// (it says what to look for: its TUN, subnet file, rules, peers, etcd),
// then everything else at once, each part bounded in time and each failure
// kept as the fact's error rather than thrown. The etcd client is loaded
// only here, and only when etcd is asked.

import { readFile } from 'node:fs/promises';
import { DEFAULT_SUBNET_FILE } from '../constants.js';
import { errorMessage, isWeftError } from '../errors.js';
import { encapFilterRuleset } from '../host/encap_filter.js';
import { type FirewallBackend, type Ruleset, type RulesetState, detectBackend, rulesetState } from '../host/firewall.js';
import { ipForwarding, masqueradeRuleset } from '../host/masquerade.js';
import { listLinks } from '../host/netconf.js';
import { pingAll } from '../host/ping.js';
import { type Cidr, formatCidr, formatIp, parseCidr } from '../net/ipv4.js';
import type { ListenAddr } from '../net/listen_addr.js';
import type { DaemonStatus } from '../observe/status.js';
import { fetchStatusText, parseStatus } from '../observe/status_client.js';
import type { EtcdOptions, EtcdRegistry } from '../registry/etcd_registry.js';
import { connectionCause } from '../registry/etcd_refusal.js';
import { type CheckFacts, type EtcdData, type EtcdFacts, type MemberFacts, type Outcome, subnetFileFact } from './facts.js';

const STATUS_TIMEOUT_MS = 3000;
const ETCD_TIMEOUT_MS = 3000;
/** Echo probes: three requests 0.2 s apart, the last waited for 1 s; 32 peers at a time; no probe starts after 5 s. */
const PROBE = { count: 3, waitS: 1, parallel: 32, budgetMs: 5000 } as const;

export interface GatherOptions {
  /** weftd's --metrics-addr. */
  readonly metricsAddr: ListenAddr;
  /** The bridge pods attach to. */
  readonly bridge: string;
  /** --subnet-file when given; else the file weftd says it writes. */
  readonly subnetFile: string | undefined;
  /** Whether to probe the peers. */
  readonly probe: boolean;
  /** How to reach etcd, given weftd's status (undefined when it does not answer), whose endpoints and prefix stand in for flags not given. */
  readonly etcd: (s: DaemonStatus | undefined) => EtcdOptions;
}

async function outcome<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
}

export async function gatherFacts(o: GatherOptions): Promise<CheckFacts> {
  const weftd = await outcome(async () => parseStatus(await fetchStatusText(o.metricsAddr, STATUS_TIMEOUT_MS), o.metricsAddr));
  const s = weftd.ok ? weftd.value : undefined;
  const subnetFilePath = o.subnetFile ?? s?.host.subnetFile ?? DEFAULT_SUBNET_FILE;
  const subnetFile = await outcome(async () => subnetFileFact(await readSubnetFile(subnetFilePath), subnetFilePath));
  // A bad etcd flag (an unreadable --etcd-cafile) is the caller's error: thrown, not a fact.
  const etcdOptions = o.etcd(s);
  const fileSubnet = subnetFile.ok && subnetFile.value.held ? formatCidr(subnetFile.value.held.subnet) : undefined;
  const subnets = new Set([s?.subnet, fileSubnet].filter((x): x is string => typeof x === 'string'));
  const [links, ipForward, encapFilter, ipMasq, probes, etcd] = await Promise.all([
    outcome(listLinks),
    ipForwarding(),
    s ? encapFilterState(s) : undefined,
    s ? masqueradeState(s) : undefined,
    o.probe && s && s.subnet !== null && s.peers.length > 0 ? outcome(() => pingAll(s.peers.map((p) => overlayAddress(p.subnet)), PROBE)) : undefined,
    outcome(() => gatherEtcd(etcdOptions, s?.node, subnets)),
  ]);
  return {
    nowMs: Date.now(),
    bridge: o.bridge,
    subnetFilePath,
    weftd,
    subnetFile,
    links,
    ipForward,
    ...(encapFilter ? { encapFilter } : {}),
    ...(ipMasq ? { ipMasq } : {}),
    ...(probes ? { probes } : {}),
    etcd,
  };
}

/** The file's text; null when it does not exist. */
async function readSubnetFile(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** A node's overlay address: its TUN's, the first of its subnet. */
function overlayAddress(subnet: string): string {
  return formatIp(parseCidr(subnet).base);
}

function backendOf(name: string | null): FirewallBackend | undefined {
  return name === 'nftables' || name === 'iptables' ? name : undefined;
}

/** What weftd's config (network, port, subnet) expects of the host's rules. */
function configOf(s: DaemonStatus): { network: Cidr; port: number; subnet: Cidr | undefined } | undefined {
  if (s.network === null || s.port === null) return undefined;
  return { network: parseCidr(s.network), port: s.port, subnet: s.subnet === null ? undefined : parseCidr(s.subnet) };
}

function encapFilterState(s: DaemonStatus): Promise<Outcome<RulesetState>> | undefined {
  const c = configOf(s);
  const backend = backendOf(s.host.encapFilter.backend);
  if (!c || !backend) return undefined;
  return outcome(() => rulesetState(encapFilterRuleset(c.network, c.port), backend));
}

/** As weftd installed them; with --ip-masq off, whether an earlier weftd left them behind. */
function masqueradeState(s: DaemonStatus): Promise<Outcome<RulesetState>> | undefined {
  const c = configOf(s);
  if (!c) return undefined;
  const ruleset: Ruleset = masqueradeRuleset(c.network, c.subnet ?? c.network);
  if (!s.host.ipMasq.wanted) return outcome(async () => rulesetState(ruleset, detectBackend('looking for masquerade rules')));
  const backend = backendOf(s.host.ipMasq.backend);
  if (!backend || !c.subnet) return undefined;
  return outcome(() => rulesetState(ruleset, backend));
}

/** Each member's own status, then (when one has a leader) the config and this node's leases. */
async function gatherEtcd(opts: EtcdOptions, node: string | undefined, subnets: ReadonlySet<string>): Promise<EtcdFacts> {
  const { EtcdRegistry } = await import('../registry/etcd_registry.js');
  const members = await Promise.all(
    opts.endpoints.map(async (endpoint): Promise<MemberFacts> => {
      const reg = new EtcdRegistry({ ...opts, endpoints: [endpoint], callTimeoutMs: ETCD_TIMEOUT_MS });
      try {
        return { endpoint, status: await reg.memberStatus() };
      } catch (err) {
        const message = connectionCause(errorMessage(err).replace(`etcd ${endpoint}: member status: `, ''));
        return { endpoint, error: message, refused: isWeftError(err, 'WEFT_ETCD_AUTH') };
      } finally {
        reg.close();
      }
    }),
  );
  const led = members.some((m) => 'status' in m && m.status.leader !== '0');
  const data: Outcome<EtcdData> = led ? await outcome(() => readWeftKeys(new EtcdRegistry({ ...opts, callTimeoutMs: ETCD_TIMEOUT_MS }), node, subnets)) : { ok: false, error: 'no member with a leader answered' };
  return { endpoints: opts.endpoints, prefix: opts.prefix, members, data };
}

async function readWeftKeys(reg: EtcdRegistry, node: string | undefined, subnets: ReadonlySet<string>): Promise<EtcdData> {
  try {
    const config = await reg.getConfig();
    const listing = await reg.listLeases();
    const mine = listing.records.filter((r) => r.lease.nodeName === node || subnets.has(formatCidr(r.subnet)));
    const leases = await Promise.all(mine.map(async (r) => ({ subnet: formatCidr(r.subnet), node: r.lease.nodeName, publicIp: r.lease.publicIp, ttlS: await reg.leaseTtl(r) })));
    return {
      config: config ? { network: formatCidr(config.network), subnetLen: config.subnetLen, vni: config.vni, port: config.port } : null,
      leases,
    };
  } finally {
    reg.close();
  }
}
