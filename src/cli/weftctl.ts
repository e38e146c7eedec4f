#!/usr/bin/env node
// weftctl: operator commands: init the network config in etcd, show it, list
// the leases; ask the local weftd for its status; check this node; install
// the CNI plugin.

import { DEFAULT_METRICS_ADDR, DEFAULT_NETWORK, DEFAULT_SUBNET_FILE, DEFAULT_SUBNET_LEN, DEFAULT_UDP_PORT, DEFAULT_VNI } from '../constants.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR, DEFAULT_CNI_NETWORK, installCni } from '../cni/install.js';
import { DEFAULT_BRIDGE, DEFAULT_CNI_DATA_DIR, DEFAULT_IPAM_DIR } from '../cni/netconf.js';
import { WeftError } from '../errors.js';
import { formatCidr } from '../net/ipv4.js';
import { configKey, parseSubnetKey } from '../registry/keys.js';
import { leaseProblem } from '../registry/lease_problem.js';
import type { Registry } from '../registry/registry.js';
import { VERSION } from '../version.js';
import { ETCD_FLAGS, etcdConnection } from './etcd_flags.js';
import { type FlagSpec, type FlagValues, helpText, intFlag, parseFlags, stringFlag } from './flags.js';
import { runMain } from './main.js';
import { resolve } from 'node:path';
import { fetchStatusText, formatDuration, parseStatus } from '../observe/status_client.js';
import { formatStatus, formatTable } from './weftctl_status.js';
import { parseListenAddr } from '../net/listen_addr.js';

const FLAGS: readonly FlagSpec[] = [
  ...ETCD_FLAGS,
  { name: 'network', type: 'string', help: 'init: cluster pod network', default: DEFAULT_NETWORK, env: false },
  { name: 'subnet-len', type: 'string', help: 'init: prefix length of each node subnet', default: String(DEFAULT_SUBNET_LEN), env: false },
  { name: 'vni', type: 'string', help: 'init: VXLAN-GPE network identifier', default: String(DEFAULT_VNI), env: false },
  { name: 'port', type: 'string', help: 'init: UDP port of the nodes', default: String(DEFAULT_UDP_PORT), env: false },
  { name: 'force', type: 'boolean', help: 'init: replace a different existing config', env: false },
  { name: 'json', type: 'boolean', help: 'leases, status, check: print JSON instead of a table', env: false },
  { name: 'metrics-addr', type: 'string', help: 'status, check: the local weftd\'s --metrics-addr', default: DEFAULT_METRICS_ADDR },
  { name: 'probe', type: 'boolean', help: 'check: ping each peer\'s overlay address (--probe=false skips it)', default: 'true', env: false },
  { name: 'bin-dir', type: 'string', help: 'cni install: where runtimes find CNI plugins', default: DEFAULT_CNI_BIN_DIR, env: false },
  { name: 'conf-dir', type: 'string', help: 'cni install: where runtimes read *.conflist', default: DEFAULT_CNI_CONF_DIR, env: false },
  { name: 'network-name', type: 'string', help: 'cni install: the CNI network name (podman --network NAME)', default: DEFAULT_CNI_NETWORK, env: false },
  { name: 'bridge', type: 'string', help: 'cni install, check: the bridge pods attach to', default: DEFAULT_BRIDGE, env: false },
  { name: 'subnet-file', type: 'string', help: 'cni install, check: the subnet file weftd writes (check: default, the one weftd names)', default: DEFAULT_SUBNET_FILE },
  { name: 'data-dir', type: 'string', help: 'cni install: the plugin\'s per-attachment state', default: DEFAULT_CNI_DATA_DIR, env: false },
  { name: 'ipam-dir', type: 'string', help: 'cni install: host-local\'s reservations', default: DEFAULT_IPAM_DIR, env: false },
  { name: 'help', type: 'boolean', help: 'print this help and exit', env: false },
  { name: 'version', type: 'boolean', help: 'print the version and exit', env: false },
];

const USAGE = `Usage: weftctl <command> [flags]

Commands:
  init [--network CIDR] [--subnet-len N] [--vni N] [--port N] [--force]
                 write the cluster network config to etcd
  config         print the network config
  leases         list the subnet leases: subnet, node, public IP, expires in, and
                 why a lease is left out of the route tables
  status [--json] [--metrics-addr HOST:PORT]
                 ask the local weftd: node, subnet, lease, engine, readiness, peers, counters
  check [--json] [--metrics-addr HOST:PORT] [--bridge B] [--subnet-file F] [--probe=false]
                 check this node (weftd, lease, subnet file, TUN, MTU, bridge, forwarding,
                 firewall, peers, etcd): one line each, ok / warn / fail and what to do;
                 exits 0 / 1 / 2 (docs/troubleshooting.md)
  cni install [--bin-dir D] [--conf-dir D] [--network-name N] [--bridge B]
              [--subnet-file F] [--data-dir D] [--ipam-dir D]
                 install the weft CNI plugin and its conflist (weft, then portmap)`;

/** Loaded only by the commands that talk to etcd: the client and protobufjs cost most of weftctl's start. */
async function registryFrom(values: FlagValues): Promise<Registry> {
  const connection = etcdConnection(values);
  const { EtcdRegistry } = await import('../registry/etcd_registry.js');
  return new EtcdRegistry(connection);
}

async function init(reg: Registry, values: FlagValues): Promise<void> {
  const network = stringFlag(values, 'network') ?? DEFAULT_NETWORK;
  const raw = {
    network,
    subnetLen: intFlag(values, 'subnet-len', 1, 32) ?? DEFAULT_SUBNET_LEN,
    vni: intFlag(values, 'vni', 1, 0xffffff) ?? DEFAULT_VNI,
    port: intFlag(values, 'port', 1, 65535) ?? DEFAULT_UDP_PORT,
  };
  const { validateNetworkConfig } = await import('../registry/schema.js');
  const cfg = validateNetworkConfig(raw, (what) => new WeftError('WEFT_BAD_FLAG', `init: ${what}`, { flag: 'network' }));
  const result = await reg.putConfig(cfg, values.force === true);
  process.stdout.write(`${configKey(reg.prefix)}: ${result} (network ${formatCidr(cfg.network)}, subnets /${cfg.subnetLen}, vni ${cfg.vni}, port ${cfg.port})\n`);
}

async function showConfig(reg: Registry): Promise<void> {
  const cfg = await reg.getConfig();
  if (!cfg) throw new WeftError('WEFT_CONFIG_MISSING', `no network config at ${configKey(reg.prefix)}; run: weftctl init --network 10.244.0.0/16`, { key: configKey(reg.prefix) });
  process.stdout.write(`${JSON.stringify({ network: formatCidr(cfg.network), subnetLen: cfg.subnetLen, vni: cfg.vni, port: cfg.port })}\n`);
}

/**
 * The leases with what each node would make of them: time left on the etcd
 * lease (none on a key written without one), and why a row is left out of
 * every node's route table (lease_problem.ts; a value that does not parse
 * is a row too).
 */
async function leases(reg: Registry, json: boolean): Promise<void> {
  const [listing, config] = await Promise.all([reg.listLeases(), reg.getConfig()]);
  const rows = await Promise.all(
    listing.records.map(async (r) => {
      const problem = config ? leaseProblem(r, config) : undefined;
      return {
        subnet: formatCidr(r.subnet),
        node: r.lease.nodeName,
        publicIp: r.lease.publicIp,
        port: r.lease.port,
        expiresInS: r.etcdLease === '0' ? null : await reg.leaseTtl(r),
        ...(problem ? { ignored: { reason: problem.reason, message: problem.message } } : {}),
      };
    }),
  );
  const invalid = listing.invalid.map((i) => {
    const subnet = parseSubnetKey(reg.prefix, i.key);
    return { key: i.key, subnet: subnet ? formatCidr(subnet) : i.key, error: i.error.message };
  });
  rows.sort((a, b) => a.subnet.localeCompare(b.subnet, 'en', { numeric: true }));
  if (json) {
    process.stdout.write(`${JSON.stringify({ leases: rows, invalid: invalid.map(({ key, error }) => ({ key, error, ignored: { reason: 'invalid', message: error } })) }, null, 2)}\n`);
    return;
  }
  const table = [
    ['SUBNET', 'NODE', 'PUBLIC IP', 'EXPIRES IN', 'NOTE'],
    ...rows.map((r) => [r.subnet, r.node, `${r.publicIp}:${r.port}`, r.expiresInS === null ? 'no TTL' : formatDuration(r.expiresInS), r.ignored ? `ignored (${r.ignored.reason}): ${r.ignored.message}` : '']),
    ...invalid.map((i) => [i.subnet, '-', '-', '-', `ignored (invalid): ${i.error}`]),
  ];
  process.stdout.write(formatTable(table));
}

/** Writes the plugin and its conflist; touches neither etcd nor weftd. */
function cniInstall(values: FlagValues): void {
  const flag = (name: string, fallback: string): string => stringFlag(values, name) ?? fallback;
  const done = installCni({
    binDir: resolve(flag('bin-dir', DEFAULT_CNI_BIN_DIR)),
    confDir: resolve(flag('conf-dir', DEFAULT_CNI_CONF_DIR)),
    networkName: flag('network-name', DEFAULT_CNI_NETWORK),
    bridge: flag('bridge', DEFAULT_BRIDGE),
    subnetFile: flag('subnet-file', DEFAULT_SUBNET_FILE),
    dataDir: flag('data-dir', DEFAULT_CNI_DATA_DIR),
    ipamDir: flag('ipam-dir', DEFAULT_IPAM_DIR),
  });
  for (const f of done) process.stdout.write(`${f.path}: ${f.written ? 'written' : 'unchanged'}\n`);
}

/** Asks the local weftd (not etcd) over its HTTP endpoint. */
async function status(values: FlagValues): Promise<void> {
  const addr = parseListenAddr(stringFlag(values, 'metrics-addr') ?? DEFAULT_METRICS_ADDR, (why) => new WeftError('WEFT_BAD_FLAG', `--metrics-addr: ${why}`, { flag: 'metrics-addr' }));
  if (addr.port === 0) throw new WeftError('WEFT_BAD_FLAG', '--metrics-addr: port 0 is not an address weftd listens on', { flag: 'metrics-addr' });
  const text = await fetchStatusText(addr);
  const s = parseStatus(text, addr);
  process.stdout.write(values.json === true ? text : formatStatus(s));
}

runMain('weftctl', async () => {
  const { values, positionals } = parseFlags(process.argv.slice(2), process.env, FLAGS);
  if (values.version) {
    process.stdout.write(`weftctl ${VERSION}\n`);
    return;
  }
  const [command, ...extra] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(helpText(USAGE, FLAGS));
    if (command === undefined && !values.help) process.exitCode = 2;
    return;
  }
  if (command === 'cni') {
    if (extra[0] !== 'install' || extra.length > 1) {
      throw new WeftError('WEFT_BAD_FLAG', `cni: expected "cni install"${extra.length ? `, got "cni ${extra.join(' ')}"` : ''}`, { flag: extra[0] ?? 'cni' });
    }
    return cniInstall(values);
  }
  if (extra.length > 0) throw new WeftError('WEFT_BAD_FLAG', `${command}: unexpected argument "${extra[0]}"`, { flag: extra[0] });
  if (!['init', 'config', 'leases', 'status', 'check'].includes(command)) throw new WeftError('WEFT_BAD_FLAG', `unknown command "${command}" (init, config, leases, status, check, cni install)`, { flag: command });
  if (command === 'status') return status(values);
  if (command === 'check') {
    const { check } = await import('./weftctl_check.js');
    process.exitCode = await check(values);
    return;
  }
  const reg = await registryFrom(values);
  try {
    if (command === 'init') await init(reg, values);
    else if (command === 'config') await showConfig(reg);
    else await leases(reg, values.json === true);
  } finally {
    reg.close();
  }
});
