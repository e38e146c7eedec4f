#!/usr/bin/env node
// weftctl: operator commands: init the network config in etcd, show it,
// change its encryption, list the leases; ask the local weftd for its status,
// or for a new WireGuard key; check this node; install the CNI plugin.

import {
  DEFAULT_METRICS_ADDR,
  DEFAULT_NETWORK,
  DEFAULT_STATE_DIR,
  DEFAULT_SUBNET_FILE,
  DEFAULT_SUBNET_LEN,
  DEFAULT_UDP_PORT,
  DEFAULT_VNI,
  ETCD_PROBE_MS,
} from '../constants.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR, DEFAULT_CNI_NETWORK, installCni, type WrittenFile } from '../cni/install.js';
import { DEFAULT_BRIDGE, DEFAULT_CNI_DATA_DIR, DEFAULT_IPAM_DIR } from '../cni/netconf.js';
import { sleep, systemClock } from '../clock.js';
import { WeftError } from '../errors.js';
import { formatCidr } from '../net/ipv4.js';
import { configKey, parseSubnetKey } from '../registry/keys.js';
import { leaseProblem } from '../registry/lease_problem.js';
import type { Registry } from '../registry/registry.js';
import type { NetworkConfig } from '../registry/schema.js';
import { InstanceLock } from '../host/instance_lock.js';
import { DEFAULT_WG_PORT } from '../wireguard/constants.js';
import { VERSION } from '../version.js';
import { etcdConnection } from './etcd_flags.js';
import { type FlagValues, helpText, intFlag, parseFlags, stringFlag } from './flags.js';
import { WEFTCTL_COMMANDS, WEFTCTL_FLAGS, WEFTCTL_USAGE } from './weftctl_flags.js';
import { runMain } from './main.js';
import { resolve } from 'node:path';
import { fetchStatusText, formatDuration, parseStatus } from '../observe/status_client.js';
import { formatStatus, formatTable } from './weftctl_status.js';
import { parseListenAddr } from '../net/listen_addr.js';

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
    encryption: stringFlag(values, 'encryption') ?? 'off',
    wireguardPort: intFlag(values, 'wireguard-port', 1, 65535) ?? DEFAULT_WG_PORT,
  };
  const { validateNetworkConfig } = await import('../registry/schema.js');
  const cfg = validateNetworkConfig(raw, (what) => new WeftError('WEFT_BAD_FLAG', `init: ${what}`, { flag: 'network' }));
  const result = await reg.putConfig(cfg, values.force === true);
  const encryption = cfg.encryption === 'off' ? '' : `, encryption ${cfg.encryption} on port ${cfg.wireguardPort}`;
  process.stdout.write(`${configKey(reg.prefix)}: ${result} (network ${formatCidr(cfg.network)}, subnets /${cfg.subnetLen}, vni ${cfg.vni}, port ${cfg.port}${encryption})\n`);
}

async function currentConfig(reg: Registry): Promise<NetworkConfig> {
  const cfg = await reg.getConfig();
  if (!cfg) throw new WeftError('WEFT_CONFIG_MISSING', `no network config at ${configKey(reg.prefix)}; run: weftctl init --network 10.244.0.0/16`, { key: configKey(reg.prefix) });
  return cfg;
}

async function showConfig(reg: Registry): Promise<void> {
  const cfg = await currentConfig(reg);
  const encryption = cfg.encryption === 'off' ? {} : { encryption: cfg.encryption, wireguardPort: cfg.wireguardPort };
  process.stdout.write(`${JSON.stringify({ network: formatCidr(cfg.network), subnetLen: cfg.subnetLen, vni: cfg.vni, port: cfg.port, ...encryption })}\n`);
}

/**
 * Prints the cluster's encryption, or changes it: the config is rewritten
 * with only `encryption` changed, and every weftd follows within seconds
 * (docs/encryption.md gives the rollout steps).
 */
async function encryption(reg: Registry, mode: string | undefined): Promise<void> {
  const cfg = await currentConfig(reg);
  if (mode === undefined) {
    process.stdout.write(`${cfg.encryption}${cfg.encryption === 'off' ? '' : ` (WireGuard port ${cfg.wireguardPort})`}\n`);
    return;
  }
  const { validateNetworkConfig } = await import('../registry/schema.js');
  const next = validateNetworkConfig({ ...cfg, network: formatCidr(cfg.network), encryption: mode }, (what) => new WeftError('WEFT_BAD_FLAG', what, { flag: 'encryption' }));
  const result = next.encryption === cfg.encryption ? 'unchanged' : await reg.putConfig(next, true);
  process.stdout.write(`encryption ${next.encryption}: ${result === 'replaced' ? `changed from ${cfg.encryption}; nodes follow within ${ETCD_PROBE_MS / 1000} s` : 'unchanged'}\n`);
}

/**
 * The leases with what each node would make of them: time left on the etcd
 * lease (none on a key written without one), and why a row is left out of
 * every node's route table (lease_problem.ts; a value that does not parse
 * is a row too).
 */
async function leases(reg: Registry, json: boolean): Promise<void> {
  // One after the other: a refusal is reported by the first call, always the same one.
  const listing = await reg.listLeases();
  const config = await reg.getConfig();
  const rows = await Promise.all(
    listing.records.map(async (r) => {
      const problem = config ? leaseProblem(r, config) : undefined;
      return {
        subnet: formatCidr(r.subnet),
        node: r.lease.nodeName,
        publicIp: r.lease.publicIp,
        port: r.lease.port,
        wireguardPublicKey: r.lease.wireguardPublicKey || null,
        wireguardPort: r.lease.wireguardPublicKey ? r.lease.wireguardPort || DEFAULT_WG_PORT : null,
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
  // The key column only once a lease carries a key: a cluster that never encrypted lists what it always did.
  const keys = rows.some((r) => r.wireguardPublicKey);
  const key = (cell: string): string[] => (keys ? [cell] : []);
  const table = [
    ['SUBNET', 'NODE', 'PUBLIC IP', ...key('WIREGUARD KEY'), 'EXPIRES IN', 'NOTE'],
    ...rows.map((r) => [
      r.subnet,
      r.node,
      `${r.publicIp}:${r.port}`,
      ...key(r.wireguardPublicKey ? `${r.wireguardPublicKey} :${r.wireguardPort}` : '-'),
      r.expiresInS === null ? 'no TTL' : formatDuration(r.expiresInS),
      r.ignored ? `ignored (${r.ignored.reason}): ${r.ignored.message}` : '',
    ]),
    ...invalid.map((i) => [i.subnet, '-', '-', ...key('-'), '-', `ignored (invalid): ${i.error}`]),
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
  const file = (f: WrittenFile): void => {
    process.stdout.write(`${f.path}: ${f.written ? 'written' : 'unchanged'}\n`);
  };
  file(done.plugin);
  for (const c of done.companions) {
    if (c.state === 'linked') process.stdout.write(`${c.path} -> ${c.target}: linked\n`);
    else if (c.state === 'present') process.stdout.write(`${c.path}: present\n`);
    else process.stderr.write(`weftctl: warning: no ${c.name} plugin in ${c.searched.join(', ')}: pods cannot start until it is in ${c.path} (install containernetworking-plugins; containerd 1.x looks in its bin_dir only)\n`);
  }
  file(done.conflist);
}

/** Asks the local weftd (not etcd) over its HTTP endpoint. */
async function status(values: FlagValues): Promise<void> {
  const addr = parseListenAddr(stringFlag(values, 'metrics-addr') ?? DEFAULT_METRICS_ADDR, (why) => new WeftError('WEFT_BAD_FLAG', `--metrics-addr: ${why}`, { flag: 'metrics-addr' }));
  if (addr.port === 0) throw new WeftError('WEFT_BAD_FLAG', '--metrics-addr: port 0 is not an address weftd listens on', { flag: 'metrics-addr' });
  const text = await fetchStatusText(addr);
  const s = parseStatus(text, addr);
  process.stdout.write(values.json === true ? text : formatStatus(s));
}

/**
 * Asks the local weftd (found by the instance lock in its state directory)
 * for a new key with SIGUSR1, then waits until its lease in etcd carries a
 * key other than the one it had.
 */
async function rotateKey(reg: Registry, values: FlagValues): Promise<void> {
  const stateDir = stringFlag(values, 'state-dir') ?? DEFAULT_STATE_DIR;
  const timeoutS = intFlag(values, 'timeout', 1, 3600) ?? 30;
  const holder = InstanceLock.holder(stateDir);
  const keyOf = async (): Promise<string> => (await reg.listLeases()).records.find((r) => r.lease.nodeName === holder.node)?.lease.wireguardPublicKey ?? '';
  const before = await keyOf();
  if (!before) throw new WeftError('WEFT_CONFIG_INVALID', `node ${holder.node} publishes no WireGuard key (encryption is off, or its lease is not written yet): nothing to rotate`, { node: holder.node });
  process.kill(holder.pid, 'SIGUSR1');
  const deadline = systemClock.now() + timeoutS * 1000;
  for (;;) {
    const now = await keyOf();
    if (now && now !== before) {
      process.stdout.write(`node ${holder.node}: WireGuard key rotated, ${before} -> ${now}\n`);
      return;
    }
    if (systemClock.now() > deadline) throw new WeftError('WEFT_ETCD_UNAVAILABLE', `node ${holder.node}'s lease still publishes ${before} after ${timeoutS} s; see weftd's log (wireguard_key_rotated, encryption_apply_failed)`, { node: holder.node });
    await sleep(systemClock, 200);
  }
}

runMain('weftctl', async () => {
  const { values, positionals } = parseFlags(process.argv.slice(2), process.env, WEFTCTL_FLAGS);
  if (values.version) {
    process.stdout.write(`weftctl ${VERSION}\n`);
    return;
  }
  const [command, ...extra] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(helpText(WEFTCTL_USAGE, WEFTCTL_FLAGS));
    if (command === undefined && !values.help) process.exitCode = 2;
    return;
  }
  if (command === 'cni') {
    if (extra[0] !== 'install' || extra.length > 1) {
      throw new WeftError('WEFT_BAD_FLAG', `cni: expected "cni install"${extra.length ? `, got "cni ${extra.join(' ')}"` : ''}`, { flag: extra[0] ?? 'cni' });
    }
    return cniInstall(values);
  }
  if (extra.length > (command === 'encryption' ? 1 : 0)) throw new WeftError('WEFT_BAD_FLAG', `${command}: unexpected argument "${extra.at(-1)}"`, { flag: extra.at(-1) });
  if (!WEFTCTL_COMMANDS.includes(command)) throw new WeftError('WEFT_BAD_FLAG', `unknown command "${command}" (${WEFTCTL_COMMANDS.join(', ')})`, { flag: command });
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
    else if (command === 'encryption') await encryption(reg, extra[0]);
    else if (command === 'rotate-key') await rotateKey(reg, values);
    else await leases(reg, values.json === true);
  } finally {
    reg.close();
  }
});
