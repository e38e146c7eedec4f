// Pods may not send encapsulated traffic: a pod that sends VXLAN-GPE to a
// node's port could forge packets from any address of its node's subnet
// (masquerade would even give them the node's own outer source). weft's own
// firewall table drops UDP to the cluster port from the cluster network, on
// input (to this node) and forward (through it to other nodes), so each node
// stops its own pods. Nodes' own traffic comes from underlay addresses and
// passes.

import { type Cidr, formatCidr } from '../net/ipv4.js';
import { type FirewallBackend, type IptChain, type Ruleset, detectBackend, installRuleset, nftTableScript, removeRuleset } from './firewall.js';

/** nftables: `table ip weft_encap` (inspect: `nft list table ip weft_encap`). */
export const ENCAP_NFT_TABLE = 'weft_encap';
/** iptables: this chain in the filter table, jumped to from INPUT and FORWARD for UDP to the port. */
export const ENCAP_IPT_CHAIN = 'WEFT-ENCAP';
const COMMENT = 'weft: pods may not send encapsulated traffic';

function nftBody(network: Cidr, port: number): string[] {
  const rule = `    ip saddr ${formatCidr(network)} udp dport ${port} counter drop comment "${COMMENT}"`;
  return ['input', 'forward'].flatMap((hook) => [`  chain ${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`, rule, '  }']);
}

/** The nft script that (re)creates the table, for tests and operators. */
export function encapFilterNftScript(network: Cidr, port: number): string {
  return nftTableScript(ENCAP_NFT_TABLE, nftBody(network, port));
}

function iptChain(port: number): IptChain {
  const jump = (from: string): string[] => [from, '-p', 'udp', '--dport', String(port), '-m', 'comment', '--comment', 'weft: encapsulation filter', '-j', ENCAP_IPT_CHAIN];
  return { table: 'filter', chain: ENCAP_IPT_CHAIN, jumps: [jump('INPUT'), jump('FORWARD')] };
}

/** The filter's rules for `network` and `port`, as installed and as `weftctl check` expects them. */
export function encapFilterRuleset(network: Cidr, port: number): Ruleset {
  const iptRules = [['-s', formatCidr(network), '-m', 'comment', '--comment', COMMENT, '-j', 'DROP']];
  return { nftTable: ENCAP_NFT_TABLE, nftBody: nftBody(network, port), ipt: iptChain(port), iptRules };
}

/** Installs (or replaces) the filter; returns the backend, which removeEncapFilter needs. */
export async function installEncapFilter(network: Cidr, port: number): Promise<FirewallBackend> {
  const backend = detectBackend('the pod encapsulation filter');
  await installRuleset(encapFilterRuleset(network, port), backend);
  return backend;
}

export async function removeEncapFilter(backend: FirewallBackend, port: number): Promise<void> {
  await removeRuleset({ nftTable: ENCAP_NFT_TABLE, ipt: iptChain(port) }, backend);
}
