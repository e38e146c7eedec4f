// --ip-masq: source NAT for pod traffic that leaves the cluster network, the
// rules flannel installs, in a table (nftables) or chain (iptables) of weft's
// own (host/firewall.ts), so they are replaced whole on start and removed
// whole on shutdown without touching anybody else's rules.
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
// a chain WEFT-POSTROUTING jumped to from nat POSTROUTING.

import { readFile } from 'node:fs/promises';
import { type Cidr, formatCidr } from '../net/ipv4.js';
import { type FirewallBackend, type IptChain, type Ruleset, detectBackend, installRuleset, nftRemoveTableScript, nftTableScript, removeRuleset } from './firewall.js';

/** nftables: `table ip weft`, chain `postrouting` (inspect: `nft list table ip weft`). */
export const NFT_TABLE = 'weft';
export const NFT_CHAIN = 'postrouting';
/** iptables: this chain in the nat table, jumped to from POSTROUTING. */
export const IPT_CHAIN = 'WEFT-POSTROUTING';
const IPT: IptChain = { table: 'nat', chain: IPT_CHAIN, jumps: [['POSTROUTING', '-m', 'comment', '--comment', 'weft: ip-masq', '-j', IPT_CHAIN]] };
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

function nftBody(network: Cidr, subnet: Cidr): string[] {
  const n = formatCidr(network);
  const s = formatCidr(subnet);
  const rule = (r: MasqRule): string => {
    const src = `ip saddr ${r.src === 'in' ? '' : '!= '}${n}`;
    const dst = r.dst === 'network' ? `ip daddr ${n}` : r.dst === 'subnet' ? `ip daddr ${s}` : `ip daddr != ${MULTICAST}`;
    const action = r.action === 'return' ? 'return' : 'masquerade fully-random';
    return `    ${src} ${dst} ${action} comment "${r.comment}"`;
  };
  return [`  chain ${NFT_CHAIN} {`, '    type nat hook postrouting priority srcnat; policy accept;', ...RULES.map(rule), '  }'];
}

/** The nft script that (re)creates `table ip weft` in one transaction. */
export function nftInstallScript(network: Cidr, subnet: Cidr): string {
  return nftTableScript(NFT_TABLE, nftBody(network, subnet));
}

/** Deletes `table ip weft`; no error when it is absent. */
export function nftRemoveScript(): string {
  return nftRemoveTableScript(NFT_TABLE);
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

/** The masquerade rules for `network`, this node being `subnet`, as installed and as `weftctl check` expects them. */
export function masqueradeRuleset(network: Cidr, subnet: Cidr): Ruleset {
  return { nftTable: NFT_TABLE, nftBody: nftBody(network, subnet), ipt: IPT, iptRules: iptablesRules(network, subnet) };
}

/**
 * Installs (or replaces) the masquerade rules for `network`, this node being
 * `subnet`, and returns the backend used, which removeMasquerade needs.
 * Idempotent: a second run, e.g. after a crash, leaves one set of rules.
 */
export async function installMasquerade(network: Cidr, subnet: Cidr, backend?: FirewallBackend): Promise<FirewallBackend> {
  const b = backend ?? detectBackend('--ip-masq');
  await installRuleset(masqueradeRuleset(network, subnet), b);
  return b;
}

/** Removes what installMasquerade put in place with `backend`; no error when it is already gone. */
export async function removeMasquerade(backend: FirewallBackend): Promise<void> {
  await removeRuleset({ nftTable: NFT_TABLE, ipt: IPT }, backend);
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
