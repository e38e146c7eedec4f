// The plugin's verbs: ADD, DEL, CHECK, GC and STATUS over the delegates, the
// plugin's state and host-local's reservations. Each either returns what goes
// on stdout or throws a CniError; nothing here prints.

import { readFileSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import { contains, formatCidr, parseIp } from '../net/ipv4.js';
import { parseSubnetFile, type SubnetEnv, type SubnetFile } from '../host/subnet_env.js';
import { checkAttachment, listAttachments, loadAttachment, removeAttachment, saveAttachment, type AttachmentState } from './attachments.js';
import { bridgeConfig, findPlugin, runDelegate } from './delegate.js';
import type { Attachment, WeftNetConf } from './netconf.js';
import { heldBy, listReservations, removeReservations } from './reservations.js';
import { type CniEnv, CniCode, CniError, required } from './spec.js';
import { type InUse, stalePods, subnetChangedMessage } from './subnet_change.js';

export type CniOutput = Record<string, unknown> | undefined;

/** Plugins every ADD needs on CNI_PATH. */
const DELEGATES = ['bridge', 'host-local'] as const;

/** Notes for the operator on stderr (runtimes log a plugin's stderr). */
export function note(env: CniEnv, msg: string): void {
  const id = env.containerId ? ` ${env.containerId.slice(0, 12)}` : '';
  process.stderr.write(`weft ${env.command}${id}: ${msg}\n`);
}

function attachmentOf(env: CniEnv): Attachment {
  return checkAttachment({ containerId: required(env.containerId, 'CNI_CONTAINERID', env.command), ifname: required(env.ifname, 'CNI_IFNAME', env.command) });
}

function cniPathOf(env: CniEnv): readonly string[] {
  if (env.path.length === 0) throw new CniError(CniCode.BadEnvironment, `CNI_PATH is not set (required for ${env.command}: the bridge and host-local plugins are found there)`);
  return env.path;
}

/** The node's subnet file: missing is "try again later" (weftd not up yet); unparsable is invalid config. */
function readSubnetFile(conf: WeftNetConf): SubnetFile {
  let text: string;
  try {
    text = readFileSync(conf.subnetFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CniError(CniCode.TryAgainLater, `node subnet file ${conf.subnetFile} does not exist: weftd has not leased a subnet on this node yet (is it running?)`);
    }
    throw new CniError(CniCode.Io, `cannot read node subnet file ${conf.subnetFile}: ${errorMessage(err)}`);
  }
  try {
    return parseSubnetFile(text, conf.subnetFile);
  } catch (err) {
    throw new CniError(CniCode.InvalidConfig, `node subnet file does not parse: ${errorMessage(err)}`);
  }
}

/** Why the file's lease cannot be vouched for now: past its expiry, another node may hold the subnet. */
function leaseExpired(held: SubnetEnv, conf: WeftNetConf): string | undefined {
  if (held.leaseExpiresMs === undefined || Date.now() < held.leaseExpiresMs) return undefined;
  return (
    `the node's lease on ${formatCidr(held.subnet)} expired at ${new Date(held.leaseExpiresMs).toISOString()} unless weftd renewed it and could not rewrite ${conf.subnetFile}: ` +
    'weftd is stopped, frozen or cut off from etcd, and another node may hold the subnet now; try again later'
  );
}

/**
 * The subnet this node holds: none (weftd lost it, or waits for a free one),
 * or a lease past its expiry, is "try again later", saying why.
 */
function readSubnet(conf: WeftNetConf): SubnetEnv {
  const f = readSubnetFile(conf);
  if (f.none) throw new CniError(CniCode.TryAgainLater, `this node holds no pod subnet now (${f.none.reason}); weftd takes one as soon as it can: try again later`);
  const expired = leaseExpired(f.held, conf);
  if (expired) throw new CniError(CniCode.TryAgainLater, expired);
  return f.held;
}

function addressesOf(result: Record<string, unknown> | undefined): string[] {
  const ips = result?.ips;
  if (!Array.isArray(ips)) return [];
  return ips.map((i: { address?: unknown }) => (typeof i?.address === 'string' ? i.address : '')).filter((a) => a !== '');
}

/** Every address the plugin or host-local knows in use, but for `self`'s own. */
function addressesInUse(conf: WeftNetConf, self: Attachment): InUse[] {
  const other = (a: Attachment): boolean => a.containerId !== self.containerId || a.ifname !== self.ifname;
  const fromState = listAttachments(conf)
    .filter((e) => other(e.attachment))
    .flatMap((e) => (e.state?.ips ?? []).map((cidr) => ({ ...e.attachment, ip: cidr.split('/')[0]! })));
  return [...fromState, ...listReservations(conf).filter(other)];
}

function add(env: CniEnv, conf: WeftNetConf, processEnv: NodeJS.ProcessEnv): CniOutput {
  const a = attachmentOf(env);
  const netns = required(env.netns, 'CNI_NETNS', 'ADD');
  const path = cniPathOf(env);
  const subnet = readSubnet(conf);
  const stale = stalePods(subnet.subnet, addressesInUse(conf, a));
  if (stale.length > 0) throw new CniError(CniCode.SubnetChanged, subnetChangedMessage(conf.bridge, subnet.subnet, stale));
  for (const d of DELEGATES) findPlugin(d, path);
  // An earlier ADD that completed is the runtime's to DEL; undoing a failed ADD here would tear it down.
  if ((loadAttachment(conf, a)?.ips.length ?? 0) > 0) {
    throw new CniError(CniCode.InvalidConfig, `container ${a.containerId} interface ${a.ifname} is already attached to ${conf.name}; DEL it first`);
  }

  // No pod uses an earlier subnet, so bridge may replace an address one left on the bridge.
  const delegate = bridgeConfig(conf, subnet, true);
  const pending: AttachmentState = { ...a, netns, subnet: formatCidr(subnet.subnet), delegate, ips: [] };
  // Stored before the delegate runs: a DEL after a crash here replays the same config.
  saveAttachment(conf, pending);
  let result: Record<string, unknown> | undefined;
  try {
    result = runDelegate('ADD', delegate, path, processEnv);
    if (addressesOf(result).length === 0) throw new CniError(CniCode.DelegateFailed, `bridge ADD returned no address: ${JSON.stringify(result)?.slice(0, 200)}`);
  } catch (err) {
    try {
      runDelegate('DEL', delegate, path, processEnv);
    } catch (undo) {
      note(env, `undoing the failed ADD: bridge DEL failed too: ${errorMessage(undo)}; releasing the reservation directly`);
      removeReservations(conf, (r) => heldBy(r, a));
    }
    removeAttachment(conf, a);
    throw err;
  }
  saveAttachment(conf, { ...pending, ips: addressesOf(result) });
  return { ...result, cniVersion: conf.cniVersion };
}

function del(env: CniEnv, conf: WeftNetConf, processEnv: NodeJS.ProcessEnv): CniOutput {
  const a = attachmentOf(env);
  const stored = loadAttachment(conf, a);
  const held = listReservations(conf).some((r) => heldBy(r, a));
  // containerd repeats every DEL at RemovePodSandbox, with CNI_NETNS empty and no prevResult. With no netns, no state
  // and no reservation, bridge would find nothing to undo either: answer without running it (an unreadable state file goes).
  if (!env.netns && !stored && !held) {
    removeAttachment(conf, a);
    return undefined;
  }
  let delegate = stored?.delegate;
  if (!delegate) {
    try {
      delegate = bridgeConfig(conf, readSubnet(conf), false);
    } catch (err) {
      if (held) note(env, `no stored state and no usable subnet file (${errorMessage(err)}); releasing host-local's reservation directly`);
    }
  }
  let released = false;
  if (delegate && env.path.length > 0) {
    try {
      runDelegate('DEL', delegate, env.path, processEnv);
      released = true;
    } catch (err) {
      note(env, `bridge DEL failed (${errorMessage(err)}); releasing host-local's reservation directly`);
    }
  }
  if (!released) removeReservations(conf, (r) => heldBy(r, a));
  removeAttachment(conf, a);
  return undefined;
}

function prevAddresses(conf: WeftNetConf): string[] {
  if (!conf.prevResult) throw new CniError(CniCode.InvalidConfig, 'CHECK needs prevResult (the runtime passes the result of ADD)');
  const ips = addressesOf(conf.prevResult);
  if (ips.length === 0) throw new CniError(CniCode.InvalidConfig, 'prevResult lists no ips[].address to check');
  return ips;
}

function check(env: CniEnv, conf: WeftNetConf, processEnv: NodeJS.ProcessEnv): CniOutput {
  const a = attachmentOf(env);
  required(env.netns, 'CNI_NETNS', 'CHECK');
  const path = cniPathOf(env);
  const ips = prevAddresses(conf);
  const file = readSubnetFile(conf);
  for (const cidr of ips) {
    const [addr = '', len = ''] = cidr.split('/');
    const ip = parseIp(addr);
    if (ip < 0 || !/^\d{1,2}$/.test(len) || Number(len) > 32) throw new CniError(CniCode.InvalidConfig, `prevResult address "${cidr}" is not an IPv4 CIDR`);
    if (file.none) {
      const { lost, reason } = file.none;
      const which = lost && contains(lost, ip) ? `the node no longer holds its subnet ${formatCidr(lost)}` : 'the node holds no pod subnet now';
      throw new CniError(CniCode.AddressOutsideSubnet, `pod address ${cidr}: ${which} (${reason}); the address may be another node's now: recreate the pod`);
    }
    const subnet = file.held;
    const expired = leaseExpired(subnet, conf);
    if (expired) throw new CniError(CniCode.TryAgainLater, `pod address ${cidr}: ${expired}`);
    if (!contains(subnet.subnet, ip) || Number(len) !== subnet.subnet.len) {
      throw new CniError(
        CniCode.AddressOutsideSubnet,
        `pod address ${cidr} is outside the node's current subnet ${formatCidr(subnet.subnet)} (${conf.subnetFile}): the node's lease changed; recreate the pod`,
      );
    }
  }
  const state = loadAttachment(conf, a);
  if (!state) throw new CniError(CniCode.UnknownContainer, `no weft attachment for container ${a.containerId} interface ${a.ifname} (no state in ${conf.dataDir}/${conf.name})`);
  const delegateVersion = String(state.delegate.cniVersion);
  runDelegate('CHECK', { ...state.delegate, prevResult: { ...conf.prevResult, cniVersion: delegateVersion } }, path, processEnv);
  return undefined;
}

function gc(env: CniEnv, conf: WeftNetConf): CniOutput {
  if (!conf.validAttachments) throw new CniError(CniCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" (the attachments to keep; an empty list removes all)');
  const valid = conf.validAttachments;
  const keep = new Set(valid.map((v) => `${v.containerId}:${v.ifname}`));
  let states = 0;
  for (const { attachment } of listAttachments(conf)) {
    if (keep.has(`${attachment.containerId}:${attachment.ifname}`)) continue;
    removeAttachment(conf, attachment);
    states++;
  }
  const released = removeReservations(conf, (r) => !valid.some((v) => heldBy(r, v)));
  if (states + released.length > 0) note(env, `removed ${states} stale attachment state file(s) and ${released.length} reservation(s)${released.length ? ` (${released.map((r) => r.ip).join(', ')})` : ''}`);
  return undefined;
}

function status(env: CniEnv, conf: WeftNetConf): CniOutput {
  try {
    readSubnet(conf);
    for (const d of DELEGATES) findPlugin(d, cniPathOf(env));
  } catch (err) {
    throw new CniError(CniCode.StatusCannotAdd, `cannot add pods: ${errorMessage(err)}`);
  }
  return undefined;
}

/** Runs one verb but VERSION (which needs no config). */
export function runCommand(env: CniEnv, conf: WeftNetConf, processEnv: NodeJS.ProcessEnv): CniOutput {
  switch (env.command) {
    case 'ADD':
      return add(env, conf, processEnv);
    case 'DEL':
      return del(env, conf, processEnv);
    case 'CHECK':
      return check(env, conf, processEnv);
    case 'GC':
      return gc(env, conf);
    case 'STATUS':
      return status(env, conf);
    case 'VERSION':
      throw new CniError(CniCode.BadEnvironment, 'VERSION is answered before the config is read');
  }
}
