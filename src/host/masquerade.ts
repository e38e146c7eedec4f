// --ip-masq: source NAT for pod traffic that leaves the cluster network, the
// rules flannel installs, in a table (nftables) or chain (iptables) of weft's
// own, so they are replaced whole on start and removed whole on shutdown
// without touching anybody else's rules.
//
// For cluster network N (e.g. 10.244.0.0/16) and this node's subnet S:
//
//   from N to N                        no NAT (pod to pod keeps its addresses)
//   from N to anywhere but 224.0.0.0/4 masquerade (pods reaching the outside
//                                      leave with the node's address)
//   from outside N to S                no NAT (reaches a local pod directly)
//   from outside N to N                masquerade (forwarded into the overlay:
//                                      takes the TUN's address, so the owning
//                                      node's anti-spoofing check accepts it
//                                      and the reply comes back through here)
//
// nftables (`nft`) is used where it is installed; without it, iptables with
// a chain WEFT-POSTROUTING jumped to from nat POSTROUTING. Runs at
// control-plane rate only; every failure names the command.

import { readFile } from 'node:fs/promises';
import { WeftError } from '../errors.js';
import { type CmdResult, CommandMissing, mustRun, runCommand } from './command.js';
import { type Cidr, formatCidr } from '../net/ipv4.js';

export type MasqBackend = 'nftables' | 'iptables';

/** nftables: `table ip weft`, chain `postrouting` (inspect: `nft list table ip weft`). */
export const NFT_FAMILY = 'ip';
export const NFT_TABLE = 'weft';
export const NFT_CHAIN = 'postrouting';
/** iptables: this chain in the nat table, jumped to from POSTROUTING. */
export const IPT_CHAIN = 'WEFT-POSTROUTING';
const IPT_JUMP_COMMENT = 'weft: ip-masq';
const MULTICAST = '224.0.0.0/4';

interface MasqRule {
  /** Match on the source: in the cluster network, or outside it. */
  readonly src: 'in' | 'out';
  /** The destination: the cluster network, this node's subnet, or anything but multicast. */
  readonly dst: 'network' | 'subnet' | 'not-multicast';
  readonly action: 'return' | 'masquerade';
  readonly comment: string;
}

const RULES: readonly MasqRule[] = [
  { src: 'in', dst: 'network', action: 'return', comment: 'weft: pod to pod, no NAT' },
  { src: 'in', dst: 'not-multicast', action: 'masquerade', comment: 'weft: pod to outside' },
  { src: 'out', dst: 'subnet', action: 'return', comment: 'weft: outside to a local pod, no NAT' },
  { src: 'out', dst: 'network', action: 'masquerade', comment: 'weft: outside to a remote pod' },
];

/**
 * The nft script that (re)creates `table ip weft` in one transaction:
 * creating the table first makes the delete succeed when it is absent, so
 * running it again replaces the rules, never duplicates them.
 */
export function nftInstallScript(network: Cidr, subnet: Cidr): string {
  const n = formatCidr(network);
  const s = formatCidr(subnet);
  const rule = (r: MasqRule): string => {
    const src = `ip saddr ${r.src === 'in' ? '' : '!= '}${n}`;
    const dst = r.dst === 'network' ? `ip daddr ${n}` : r.dst === 'subnet' ? `ip daddr ${s}` : `ip daddr != ${MULTICAST}`;
    const action = r.action === 'return' ? 'return' : 'masquerade fully-random';
    return `    ${src} ${dst} ${action} comment "${r.comment}"`;
  };
  return [
    `add table ${NFT_FAMILY} ${NFT_TABLE}`,
    `delete table ${NFT_FAMILY} ${NFT_TABLE}`,
    `table ${NFT_FAMILY} ${NFT_TABLE} {`,
    `  chain ${NFT_CHAIN} {`,
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...RULES.map(rule),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Deletes `table ip weft`; no error when it is absent. */
export function nftRemoveScript(): string {
  return `add table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`;
}

/** The `iptables -t nat -A WEFT-POSTROUTING ...` arguments after the chain name, one array per rule. */
export function iptablesRules(network: Cidr, subnet: Cidr): string[][] {
  const n = formatCidr(network);
  const s = formatCidr(subnet);
  return RULES.map((r) => [
    ...(r.src === 'in' ? ['-s', n] : ['!', '-s', n]),
    ...(r.dst === 'network' ? ['-d', n] : r.dst === 'subnet' ? ['-d', s] : ['!', '-d', MULTICAST]),
    '-m', 'comment', '--comment', r.comment,
    ...(r.action === 'return' ? ['-j', 'RETURN'] : ['-j', 'MASQUERADE', '--random-fully']),
  ]);
}

const IPT_JUMP = ['POSTROUTING', '-m', 'comment', '--comment', IPT_JUMP_COMMENT, '-j', IPT_CHAIN];

/** nftables where `nft` is installed, else iptables where it is; neither is an error naming both. */
export async function detectBackend(): Promise<MasqBackend> {
  for (const [backend, file] of [['nftables', 'nft'], ['iptables', 'iptables']] as const) {
    try {
      await runCommand(file, ['--version']);
      return backend;
    } catch (err) {
      if (!(err instanceof CommandMissing)) throw err;
    }
  }
  throw new WeftError('WEFT_HOST_SETUP', '--ip-masq needs nft (nftables) or iptables on PATH, and neither was found', { command: ['nft', '--version'] });
}

const ipt = (args: readonly string[]): Promise<CmdResult> => runCommand('iptables', ['-w', '5', '-t', 'nat', ...args]);
const iptMust = (args: readonly string[]): Promise<string> => mustRun('iptables', ['-w', '5', '-t', 'nat', ...args]);

/**
 * Installs (or replaces) the masquerade rules for `network`, this node being
 * `subnet`, and returns the backend used, which removeMasquerade needs.
 * Idempotent: a second run, e.g. after a crash, leaves one set of rules.
 */
export async function installMasquerade(network: Cidr, subnet: Cidr, backend?: MasqBackend): Promise<MasqBackend> {
  const b = backend ?? (await detectBackend());
  if (b === 'nftables') {
    await mustRun('nft', ['-f', '-'], nftInstallScript(network, subnet));
    return b;
  }
  // The chain: created when absent, else flushed, then filled.
  if ((await ipt(['-S', IPT_CHAIN])).code !== 0) await iptMust(['-N', IPT_CHAIN]);
  else await iptMust(['-F', IPT_CHAIN]);
  for (const rule of iptablesRules(network, subnet)) await iptMust(['-A', IPT_CHAIN, ...rule]);
  if ((await ipt(['-C', ...IPT_JUMP])).code !== 0) await iptMust(['-A', ...IPT_JUMP]);
  return b;
}

/** Removes what installMasquerade put in place with `backend`; no error when it is already gone. */
export async function removeMasquerade(backend: MasqBackend): Promise<void> {
  if (backend === 'nftables') {
    await mustRun('nft', ['-f', '-'], nftRemoveScript());
    return;
  }
  // Every jump (a crashed run and a later one may have left more than one), then the chain.
  for (let i = 0; i < 16 && (await ipt(['-C', ...IPT_JUMP])).code === 0; i++) await iptMust(['-D', ...IPT_JUMP]);
  if ((await ipt(['-S', IPT_CHAIN])).code !== 0) return;
  await iptMust(['-F', IPT_CHAIN]);
  await iptMust(['-X', IPT_CHAIN]);
}

/**
 * Whether the kernel forwards IPv4 (net.ipv4.ip_forward), without which pods
 * reach nothing beyond their node; undefined when it cannot be read. weftd
 * only reports it: forwarding is the host's policy (the CNI bridge plugin
 * and Kubernetes' node setup turn it on).
 */
export async function ipForwarding(): Promise<boolean | undefined> {
  try {
    return (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim() === '1';
  } catch {
    return undefined;
  }
}
