// The checks Linux's VXLAN-GPE device does not make, for the kernel engine,
// in a firewall table of weft's own (nftables `table ip weft_kernel`, else
// iptables chains WEFT-KERNEL-*), each drop counted under the name of the
// engine counter it stands for (src/dataplane/counters.ts):
//
//   UDP to the cluster port (input):  short, bad flags, another VNI, another
//       next protocol (as outside.ts checks the header), then an outer source
//       that is no node of the lease table (a set replaced with each table)
//   decapsulated, arriving on the device (prerouting, before conntrack):
//       an inner source neither in the cluster network nor a node's address;
//       an inner destination outside this node's subnet, or its broadcast
//   sent by this node (output): ICMP net-unreachable for a cluster
//       destination, the kernel's answer to an unowned one (counted, not dropped)
//
// The kernel cannot bind an inner source to the node that sent it (outside.ts
// does): that needs tc flower or BPF on the decapsulated packet's metadata.
// Installed whole at start, nodes replaced whole with each table, removed whole
// at stop; nothing else on the host is touched. Control-plane rate only.

import { type Cidr, formatCidr, formatIp, maskOf } from '../net/ipv4.js';
import { mustRun, runCommand } from './command.js';
import { type FirewallBackend, type IptChain, NFT_FAMILY, detectBackend, ensureJumps, iptRuleText, nftTableScript, removeIptChain, removeNftTable, replaceNftTable, runNftScript } from './firewall.js';
import { readNftCounters } from './nft_counters.js';

export const KERNEL_NFT_TABLE = 'weft_kernel';
const NODES_SET = 'nodes';

/** The counters, each named as the engine counter it stands for. */
export const KERNEL_FILTER_COUNTERS = [
  'outside_drop_short',
  'outside_drop_bad_flags',
  'outside_drop_vni',
  'outside_drop_next_proto',
  'outside_drop_unknown_sender',
  'outside_drop_spoofed_source',
  'outside_drop_not_local',
  'inside_icmp_unreachable',
] as const;
export type KernelFilterCounter = (typeof KERNEL_FILTER_COUNTERS)[number];

export interface KernelFilterSpec {
  /** The VXLAN-GPE device decapsulated packets arrive on. */
  readonly device: string;
  readonly port: number;
  readonly vni: number;
  readonly network: Cidr;
  /** This node's subnet. */
  readonly subnet: Cidr;
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;
const broadcast = (c: Cidr): number => (c.base | ~maskOf(c.len)) >>> 0;

// ---- nftables

function nftBody(s: KernelFilterSpec, nodes: readonly number[]): string[] {
  const dev = `iifname "${s.device}"`;
  const udp = `udp dport ${s.port}`;
  const drop = (counter: KernelFilterCounter): string => `counter name "${counter}" drop`;
  const elements = nodes.length > 0 ? [`    elements = { ${nodes.map(formatIp).join(', ')} }`] : [];
  return [
    ...KERNEL_FILTER_COUNTERS.map((c) => `  counter ${c} { }`),
    `  set ${NODES_SET} {`,
    '    type ipv4_addr',
    ...elements,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    // The VXLAN-GPE header is the 8 bytes after the UDP header's 8: flags, 2 reserved, next protocol, VNI (3), reserved.
    `    ${udp} udp length < 16 ${drop('outside_drop_short')}`,
    `    ${udp} @th,64,8 & 0x3d != 0x0c ${drop('outside_drop_bad_flags')}`,
    `    ${udp} @th,96,24 != ${s.vni} ${drop('outside_drop_vni')}`,
    `    ${udp} @th,88,8 != 1 ${drop('outside_drop_next_proto')}`,
    `    ${udp} ip saddr != @${NODES_SET} ${drop('outside_drop_unknown_sender')}`,
    '  }',
    '  chain decap {',
    '    type filter hook prerouting priority raw; policy accept;',
    `    ${dev} ip saddr != ${formatCidr(s.network)} ip saddr != @${NODES_SET} ${drop('outside_drop_spoofed_source')}`,
    `    ${dev} ip daddr != ${formatCidr(s.subnet)} ${drop('outside_drop_not_local')}`,
    `    ${dev} ip daddr ${formatIp(broadcast(s.subnet))} ${drop('outside_drop_not_local')}`,
    '  }',
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    // The quoted packet's destination: ICMP header 8 bytes, then its IPv4 header's destination at 16.
    `    ip daddr ${formatCidr(s.subnet)} icmp type destination-unreachable icmp code net-unreachable @th,192,32 & ${hex(maskOf(s.network.len))} == ${hex(s.network.base)} counter name "inside_icmp_unreachable"`,
    '  }',
  ];
}

/** The nft script that (re)creates the table in one transaction, for tests and operators. */
export function kernelFilterNftScript(s: KernelFilterSpec, nodes: readonly number[]): string {
  return nftTableScript(KERNEL_NFT_TABLE, nftBody(s, nodes));
}

/**
 * The nft script that turns the node set from `from` into `to` in one
 * transaction: the difference when `from` is known (one peer's change
 * writes one element, not the table's thousand), else flushed and refilled.
 */
export function nftNodesScript(to: readonly number[], from?: readonly number[]): string {
  const set = `${NFT_FAMILY} ${KERNEL_NFT_TABLE} ${NODES_SET}`;
  const elements = (verb: string, ips: readonly number[]): string[] => (ips.length > 0 ? [`${verb} element ${set} { ${ips.map(formatIp).join(', ')} }`] : []);
  if (from === undefined) return [`flush set ${set}`, ...elements('add', to), ''].join('\n');
  const had = new Set(from);
  const want = new Set(to);
  return [...elements('delete', from.filter((ip) => !want.has(ip))), ...elements('add', to.filter((ip) => !had.has(ip)))].map((l) => `${l}\n`).join('');
}

// ---- iptables (where nft is missing): the same rules in chains of the filter and raw tables

const IPT = {
  in: 'WEFT-KERNEL-IN',
  nodes: 'WEFT-KERNEL-NODES',
  stranger: 'WEFT-KERNEL-STRANGER',
  out: 'WEFT-KERNEL-OUT',
  decap: 'WEFT-KERNEL-DECAP',
  sources: 'WEFT-KERNEL-SOURCES',
  spoofed: 'WEFT-KERNEL-SPOOFED',
} as const;

const JUMP_COMMENT = ['-m', 'comment', '--comment', 'weft: kernel engine'];

/**
 * weft's chains, each with the jumps of built-in chains to it (inserted
 * first, so no earlier accept skips them): in the order remove() deletes
 * them, each after every chain that jumps to it.
 */
function iptChains(s: KernelFilterSpec): IptChain[] {
  const jump = (from: string, match: readonly string[], chain: string): string[] => [from, ...match, ...JUMP_COMMENT, '-j', chain];
  return [
    { table: 'filter', chain: IPT.in, jumpFirst: true, jumps: [jump('INPUT', ['-p', 'udp', '--dport', String(s.port)], IPT.in)] },
    { table: 'filter', chain: IPT.out, jumpFirst: true, jumps: [jump('OUTPUT', ['-p', 'icmp'], IPT.out)] },
    { table: 'raw', chain: IPT.decap, jumpFirst: true, jumps: [jump('PREROUTING', ['-i', s.device], IPT.decap)] },
    { table: 'filter', chain: IPT.nodes, jumps: [] },
    { table: 'filter', chain: IPT.stranger, jumps: [] },
    { table: 'raw', chain: IPT.sources, jumps: [] },
    { table: 'raw', chain: IPT.spoofed, jumps: [] },
  ];
}

/** u32 ranges: every 24-bit value but `v`. */
const allBut = (v: number, max: number): string => [v > 0 ? `0:${hex(v - 1)}` : '', v < max ? `${hex(v + 1)}:${hex(max)}` : ''].filter((r) => r !== '').join(',');
/** A u32 test on the UDP header, `at` bytes in (the IP header's length read from its first word). */
const udpU32 = (test: string): string[] => ['-m', 'u32', '--u32', `0>>22&0x3C@${test}`];
const counted = (counter: KernelFilterCounter, target = 'DROP'): string[] => ['-m', 'comment', '--comment', counter, '-j', target];

/** The node lists (flushed by their declaration, then filled) and, with `all`, every other chain: iptables-restore --noflush input. */
function iptScript(s: KernelFilterSpec, nodes: readonly number[], all: boolean): string {
  const sources = (chain: string, then: string): string[] => [...nodes.map((ip) => `-A ${chain} -s ${formatIp(ip)}/32 -j RETURN`), `-A ${chain} -j ${then}`];
  const rule = (chain: string, args: readonly string[]): string => `-A ${chain} ${iptRuleText(args)}`;
  const filter = [
    '*filter',
    ...(all ? [IPT.in, IPT.stranger, IPT.out] : []).map((c) => `:${c} - [0:0]`),
    `:${IPT.nodes} - [0:0]`,
    ...(all
      ? [
          rule(IPT.in, [...udpU32('4>>16=0:15'), ...counted('outside_drop_short')]),
          rule(IPT.in, [...udpU32('8>>24&0x3D=0:0xB,0xD:0xFF'), ...counted('outside_drop_bad_flags')]),
          rule(IPT.in, [...udpU32(`12>>8=${allBut(s.vni, 0xffffff)}`), ...counted('outside_drop_vni')]),
          rule(IPT.in, [...udpU32('8&0xFF=0,2:0xFF'), ...counted('outside_drop_next_proto')]),
          `-A ${IPT.in} -j ${IPT.nodes}`,
          rule(IPT.stranger, counted('outside_drop_unknown_sender')),
          rule(IPT.out, ['-p', 'icmp', '--icmp-type', 'network-unreachable', '-d', formatCidr(s.subnet), '-m', 'u32', '--u32', `0>>22&0x3C@24&${hex(maskOf(s.network.len))}=${hex(s.network.base)}`, ...counted('inside_icmp_unreachable', 'RETURN')]),
        ]
      : []),
    ...sources(IPT.nodes, IPT.stranger),
    'COMMIT',
  ];
  const raw = [
    '*raw',
    ...(all ? [IPT.decap, IPT.spoofed] : []).map((c) => `:${c} - [0:0]`),
    `:${IPT.sources} - [0:0]`,
    ...(all
      ? [
          `-A ${IPT.decap} ! -s ${formatCidr(s.network)} -j ${IPT.sources}`,
          rule(IPT.decap, ['!', '-d', formatCidr(s.subnet), ...counted('outside_drop_not_local')]),
          rule(IPT.decap, ['-d', `${formatIp(broadcast(s.subnet))}/32`, ...counted('outside_drop_not_local')]),
          rule(IPT.spoofed, counted('outside_drop_spoofed_source')),
        ]
      : []),
    ...sources(IPT.sources, IPT.spoofed),
    'COMMIT',
  ];
  return [...filter, ...raw, ''].join('\n');
}

/** iptables-save -c lines of weft's counted rules: `[packets:bytes] -A CHAIN ... --comment <counter> ...`, summed by counter. */
export function parseIptCounters(save: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of save.matchAll(/^\[(\d+):\d+\] -A WEFT-KERNEL-\S+ .*--comment "?(\w+)"?/gm)) out.set(m[2]!, (out.get(m[2]!) ?? 0) + Number(m[1]));
  return out;
}

// ---- the filter

/**
 * The installed filter. Node updates run one at a time, the latest
 * winning (a burst of tables costs one `nft` or `iptables-restore` run per
 * update it could not skip). Counters are read without blocking: nftables'
 * live over nfnetlink, iptables' from the last refreshCounters().
 */
export class KernelFilter {
  private nodes: readonly number[] = [];
  private pendingNodes: readonly number[] | undefined;
  private updating: Promise<void> | undefined;
  private draining = false;
  private removed = false;
  /** iptables: the counters as the last successful `iptables-save -c` read them. */
  private iptCounters = new Map<string, number>();
  private refreshing: Promise<void> | undefined;
  /** Why the last node update failed, until one succeeds. */
  failure: string | undefined;

  private readonly chains: readonly IptChain[];

  private constructor(
    readonly backend: FirewallBackend,
    private readonly spec: KernelFilterSpec,
  ) {
    this.chains = iptChains(spec);
  }

  /** Installs (or replaces) the filter with `nodes` as the lease table's addresses. */
  static async install(spec: KernelFilterSpec, nodes: readonly number[]): Promise<KernelFilter> {
    const f = new KernelFilter(detectBackend('the kernel engine\'s filter'), spec);
    await f.reinstall(nodes);
    return f;
  }

  /** The whole filter again (after an operator flushed the ruleset, say), with the latest nodes. */
  async reinstall(nodes: readonly number[] = this.pendingNodes ?? this.nodes): Promise<void> {
    if (this.backend === 'nftables') {
      await replaceNftTable(KERNEL_NFT_TABLE, nftBody(this.spec, nodes));
    } else {
      await mustRun('iptables-restore', ['--noflush'], iptScript(this.spec, nodes, true));
      for (const c of this.chains) await ensureJumps(c);
    }
    this.nodes = nodes;
  }

  /** Makes `nodes` the set of addresses UDP to the port is accepted from; resolves once it (or a later set) is in place. */
  setNodes(nodes: readonly number[]): Promise<void> {
    this.pendingNodes = nodes;
    if (!this.draining) {
      this.draining = true;
      this.updating = this.drain();
    }
    return this.updating!;
  }

  private async drain(): Promise<void> {
    // The loop's last check and the flag's reset run with no await between them: a set given after that starts a drain of its own.
    try {
      while (this.pendingNodes !== undefined && !this.removed) {
        const nodes = this.pendingNodes;
        this.pendingNodes = undefined;
        try {
          if (this.backend === 'nftables') await this.replaceNftNodes(nodes);
          else await mustRun('iptables-restore', ['--noflush'], iptScript(this.spec, nodes, false));
          this.nodes = nodes;
          this.failure = undefined;
        } catch (err) {
          this.failure = (err as Error).message;
        }
      }
    } finally {
      this.draining = false;
    }
  }

  /** The node set by its difference from the last one written; refilled whole when that fails (the set was changed by hand). */
  private async replaceNftNodes(nodes: readonly number[]): Promise<void> {
    const diff = nftNodesScript(nodes, this.nodes);
    if (diff === '') return;
    await runNftScript(diff).catch(() => runNftScript(nftNodesScript(nodes)));
  }

  /**
   * The counters by name; undefined when the filter is gone (an operator
   * flushed the ruleset): nftables' now, over nfnetlink; iptables' as the
   * last refreshCounters() read them.
   */
  counters(): Map<string, number> | undefined {
    const c = this.backend === 'nftables' ? readNftCounters(KERNEL_NFT_TABLE) : this.iptCounters;
    return KERNEL_FILTER_COUNTERS.every((n) => c.has(n)) ? c : undefined;
  }

  /**
   * iptables: reads the counters again by one `iptables-save -c`, a child
   * process weftd's event loop does not wait for (one run at a time; a failed
   * run keeps the values read before). Never rejects. nftables: nothing to do.
   */
  refreshCounters(): Promise<void> {
    if (this.backend === 'nftables' || this.removed) return Promise.resolve();
    this.refreshing ??= runCommand('iptables-save', ['-c'])
      .then(
        (r) => {
          if (r.code === 0) this.iptCounters = parseIptCounters(r.stdout);
        },
        () => undefined,
      )
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** Removes the filter; no error when it is already gone. */
  async remove(): Promise<void> {
    this.removed = true;
    await Promise.all([this.updating, this.refreshing]);
    if (this.backend === 'nftables') await removeNftTable(KERNEL_NFT_TABLE);
    else for (const c of this.chains) await removeIptChain(c);
  }
}
