// weftd's command line: the flag table, and its validation into the
// daemon's typed options plus the etcd connection.

import { availableParallelism, hostname } from 'node:os';
import { DEFAULT_LEASE_TTL_S, DEFAULT_METRICS_ADDR, DEFAULT_STATE_DIR, DEFAULT_SUBNET_FILE, DEFAULT_TUN_NAME } from '../constants.js';
import type { DaemonOptions } from '../daemon/options.js';
import { ENGINE_KINDS, type EngineKind } from '../dataplane/engine.js';
import { WeftError } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { parseIp } from '../net/ipv4.js';
import { type ListenAddr, parseListenAddr } from '../net/listen_addr.js';
import { ETCD_FLAGS, type EtcdConnection, etcdConnection } from './etcd_flags.js';
import { type FlagSpec, badFlag, intFlag, parseFlags, stringFlag } from './flags.js';

export const WEFTD_FLAGS: readonly FlagSpec[] = [
  ...ETCD_FLAGS,
  { name: 'node-name', type: 'string', help: 'name this node leases under', default: 'the hostname' },
  { name: 'public-ip', type: 'string', help: 'underlay address peers send to', default: 'address of --iface, else of the default-route interface' },
  { name: 'iface', type: 'string', help: 'underlay interface (public IP and MTU come from it)' },
  { name: 'engine', type: 'string', help: `dataplane engine: ${ENGINE_KINDS.join(' or ')}`, default: 'native' },
  { name: 'queues', type: 'string', help: 'native: TUN queues, one worker thread each; auto: 1 with at most 2 CPUs, else one per CPU up to 8', default: 'auto' },
  { name: 'offload', type: 'boolean', help: 'native: TUN vnet headers (TSO in, GRO coalescing out); --offload=false turns off', default: 'true' },
  { name: 'udp-gso', type: 'boolean', help: 'native: UDP segmentation offload on send, where the kernel has it', default: 'true' },
  { name: 'udp-gro', type: 'boolean', help: 'native: UDP receive offload, where the kernel has it', default: 'true' },
  { name: 'tun-name', type: 'string', help: 'TUN device name', default: DEFAULT_TUN_NAME },
  { name: 'mtu', type: 'string', help: 'TUN MTU', default: 'underlay MTU - 36' },
  { name: 'subnet-file', type: 'string', help: 'flannel-format subnet file for CNI', default: DEFAULT_SUBNET_FILE },
  { name: 'state-dir', type: 'string', help: 'where the last subnet held is recorded', default: DEFAULT_STATE_DIR },
  { name: 'lease-ttl', type: 'string', help: 'subnet lease TTL in seconds', default: String(DEFAULT_LEASE_TTL_S) },
  { name: 'resync-interval', type: 'string', help: 'seconds between full re-lists of the leases', default: '300' },
  { name: 'etcd-grace', type: 'string', help: 'seconds etcd may be unreachable before /readyz says not ready (forwarding goes on)', default: '300' },
  { name: 'stats-interval', type: 'string', help: 'seconds between counter logs (0: never)', default: '60' },
  { name: 'metrics-addr', type: 'string', help: 'host:port of /metrics, /healthz, /readyz, /status; "off" or "" turns it off', default: DEFAULT_METRICS_ADDR },
  { name: 'ip-masq', type: 'boolean', help: 'masquerade pod traffic leaving the cluster network (nftables, else iptables) and write FLANNEL_IPMASQ=true to the subnet file', default: 'false' },
  { name: 'pod-encap-filter', type: 'boolean', help: 'drop UDP to the cluster port from pod addresses, so pods cannot forge encapsulated packets (nftables table weft_encap, else iptables)', default: 'true' },
  { name: 'release-on-exit', type: 'boolean', help: 'give the subnet back on SIGTERM (default: keep it for the next start)', default: 'false' },
  { name: 'log-level', type: 'string', help: `one of ${LOG_LEVELS.join(', ')}`, default: 'info' },
  { name: 'help', type: 'boolean', help: 'print this help and exit', env: false },
  { name: 'version', type: 'boolean', help: 'print the version and exit', env: false },
];

/** What the command line asks for; to run, the daemon's options and how to reach etcd. */
export type ParsedCommand = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; options: DaemonOptions; etcd: EtcdConnection };

function metricsAddr(text: string): ListenAddr | null {
  return text === '' || text === 'off' ? null : parseListenAddr(text, (why) => badFlag('metrics-addr', why));
}

/**
 * --queues=auto: one queue on a node of at most 2 CPUs, where a second
 * worker competes with the pods and the kernel's softirqs for the same two
 * CPUs (docs/performance.md: it costs small-packet rate and latency, and on
 * some machines bulk TCP too), else one per CPU, at most 8.
 */
export function autoQueues(cpus: number): number {
  return cpus <= 2 ? 1 : Math.min(cpus, 8);
}

export function parseDaemonArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedCommand {
  const { values, positionals } = parseFlags(argv, env, WEFTD_FLAGS);
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  if (positionals.length > 0) throw new WeftError('WEFT_BAD_FLAG', `unexpected argument "${positionals[0]}" (weftd takes only flags)`, { flag: positionals[0] });

  const engine = stringFlag(values, 'engine') ?? 'native';
  if (!(ENGINE_KINDS as readonly string[]).includes(engine)) throw badFlag('engine', `"${engine}" is not one of ${ENGINE_KINDS.join(', ')}`);
  const logLevel = stringFlag(values, 'log-level') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw badFlag('log-level', `"${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  const publicIp = stringFlag(values, 'public-ip');
  if (publicIp !== undefined && parseIp(publicIp) < 0) throw badFlag('public-ip', `"${publicIp}" is not an IPv4 address`);
  const tunName = stringFlag(values, 'tun-name') ?? DEFAULT_TUN_NAME;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tunName)) throw badFlag('tun-name', `"${tunName}" is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)`);
  const nodeName = stringFlag(values, 'node-name') ?? hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/.test(nodeName)) throw badFlag('node-name', `"${nodeName}" must be 1-253 of A-Z a-z 0-9 _ . - starting with a letter or digit`);
  const etcd = etcdConnection(values);

  return {
    kind: 'run',
    etcd,
    options: {
      etcdEndpoints: etcd.endpoints,
      etcdPrefix: etcd.prefix,
      nodeName,
      publicIp,
      iface: stringFlag(values, 'iface'),
      engine: engine as EngineKind,
      queues: (values.queues === 'auto' ? undefined : intFlag(values, 'queues', 1, 64)) ?? autoQueues(availableParallelism()),
      offload: values.offload !== false,
      udpGso: values['udp-gso'] !== false,
      udpGro: values['udp-gro'] !== false,
      tunName,
      mtu: intFlag(values, 'mtu', 576, 65_000),
      subnetFile: stringFlag(values, 'subnet-file') ?? DEFAULT_SUBNET_FILE,
      stateDir: stringFlag(values, 'state-dir') ?? DEFAULT_STATE_DIR,
      leaseTtlS: intFlag(values, 'lease-ttl', 5, 10 * 365 * 86400) ?? DEFAULT_LEASE_TTL_S,
      resyncIntervalS: intFlag(values, 'resync-interval', 1, 86400) ?? 300,
      statsIntervalS: intFlag(values, 'stats-interval', 0, 86400) ?? 60,
      metricsAddr: metricsAddr(stringFlag(values, 'metrics-addr') ?? DEFAULT_METRICS_ADDR),
      etcdGraceS: intFlag(values, 'etcd-grace', 0, 86400) ?? 300,
      ipMasq: values['ip-masq'] === true,
      releaseOnExit: values['release-on-exit'] === true,
      podEncapFilter: values['pod-encap-filter'] !== false,
      logLevel: logLevel as LogLevel,
    },
  };
}
