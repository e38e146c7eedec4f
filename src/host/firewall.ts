// Rules of weft's own in the host firewall: one nftables table, or one
// iptables chain with its jumps, per purpose, replaced whole on start,
// removed whole on stop without touching anybody else's rules, and
// inspected for what is missing (`weftctl check`). nftables (`nft`) where it
// is installed, else iptables. Control-plane rate only; every failure names
// the command.

import { delimiter } from 'node:path';
import { WeftError } from '../errors.js';
import { type CmdResult, commandEnv, findExecutable, mustRun, runCommand } from './command.js';

export type FirewallBackend = 'nftables' | 'iptables';

export const NFT_FAMILY = 'ip';

/** nftables where `nft` is installed, else iptables where it is (looked up on the commands' PATH); neither is an error saying what needed them. */
export function detectBackend(purpose: string): FirewallBackend {
  const path = commandEnv().PATH!;
  for (const [backend, file] of [['nftables', 'nft'], ['iptables', 'iptables']] as const) if (findExecutable(file, path.split(delimiter))) return backend;
  throw new WeftError('WEFT_HOST_SETUP', `${purpose} needs nft (nftables) or iptables on PATH, and neither was found`, { path });
}

/**
 * The nft script that (re)creates `table ip <table>` with `body` (its chains)
 * in one transaction: creating the table first makes the delete succeed when
 * it is absent, so running it again replaces the rules, never duplicates them.
 */
export function nftTableScript(table: string, body: readonly string[]): string {
  return [`add table ${NFT_FAMILY} ${table}`, `delete table ${NFT_FAMILY} ${table}`, `table ${NFT_FAMILY} ${table} {`, ...body, '}', ''].join('\n');
}

/** Deletes `table ip <table>`; no error when it is absent. */
export function nftRemoveTableScript(table: string): string {
  return `add table ${NFT_FAMILY} ${table}\ndelete table ${NFT_FAMILY} ${table}\n`;
}

/** A chain of weft's own in an iptables table, and the rules of built-in chains that jump to it. */
export interface IptChain {
  readonly table: 'nat' | 'filter' | 'raw';
  readonly chain: string;
  /** Each a full rule of a built-in chain, e.g. ['POSTROUTING', '-m', 'comment', ..., '-j', chain]. */
  readonly jumps: readonly (readonly string[])[];
  /** The jumps are inserted first in their chains (no earlier accept skips them), else appended. */
  readonly jumpFirst?: boolean;
}

const ipt = (c: IptChain, args: readonly string[]): Promise<CmdResult> => runCommand('iptables', ['-w', '5', '-t', c.table, ...args]);
const iptMust = (c: IptChain, args: readonly string[]): Promise<string> => mustRun('iptables', ['-w', '5', '-t', c.table, ...args]);

/** Runs an nft script (`nft -f -`), one transaction. */
export async function runNftScript(script: string): Promise<void> {
  await mustRun('nft', ['-f', '-'], script);
}

/** (Re)creates `table ip <table>` with `body`, as nftTableScript says. */
export function replaceNftTable(table: string, body: readonly string[]): Promise<void> {
  return runNftScript(nftTableScript(table, body));
}

/** Deletes `table ip <table>`; no error when it is absent. */
export function removeNftTable(table: string): Promise<void> {
  return runNftScript(nftRemoveTableScript(table));
}

/** Each of `c`'s jumps added where it is missing (first or last, as `c` says), once. Idempotent. */
export async function ensureJumps(c: IptChain): Promise<void> {
  for (const [from, ...rest] of c.jumps) {
    if ((await ipt(c, ['-C', from!, ...rest])).code !== 0) await iptMust(c, c.jumpFirst ? ['-I', from!, '1', ...rest] : ['-A', from!, ...rest]);
  }
}

/** The chain created when absent, else flushed, then filled with `rules`; its jumps ensured. Idempotent. */
async function replaceIptChain(c: IptChain, rules: readonly (readonly string[])[]): Promise<void> {
  if ((await ipt(c, ['-S', c.chain])).code !== 0) await iptMust(c, ['-N', c.chain]);
  else await iptMust(c, ['-F', c.chain]);
  for (const rule of rules) await iptMust(c, ['-A', c.chain, ...rule]);
  await ensureJumps(c);
}

/** Every jump (a crashed run and a later one may have left more than one), then the chain; no error when gone. */
export async function removeIptChain(c: IptChain): Promise<void> {
  for (const jump of c.jumps) for (let i = 0; i < 16 && (await ipt(c, ['-C', ...jump])).code === 0; i++) await iptMust(c, ['-D', ...jump]);
  if ((await ipt(c, ['-S', c.chain])).code !== 0) return;
  await iptMust(c, ['-F', c.chain]);
  await iptMust(c, ['-X', c.chain]);
}

/** One purpose's rules as each backend holds them: a table of weft's own, or a chain with its jumps. */
export interface Ruleset {
  readonly nftTable: string;
  readonly nftBody: readonly string[];
  readonly ipt: IptChain;
  readonly iptRules: readonly (readonly string[])[];
}

/** Installs (or replaces) `r` with `backend`. Idempotent. */
export async function installRuleset(r: Ruleset, backend: FirewallBackend): Promise<void> {
  if (backend === 'nftables') await replaceNftTable(r.nftTable, r.nftBody);
  else await replaceIptChain(r.ipt, r.iptRules);
}

/** Removes what installRuleset put in place with `backend`; no error when it is already gone. */
export async function removeRuleset(r: Pick<Ruleset, 'nftTable' | 'ipt'>, backend: FirewallBackend): Promise<void> {
  if (backend === 'nftables') await removeNftTable(r.nftTable);
  else await removeIptChain(r.ipt);
}

/** What the host holds of a ruleset now. */
export interface RulesetState {
  /** Whether its nftables table, or its iptables chain, exists. */
  readonly present: boolean;
  /** Each rule (or iptables jump) missing from it, as its backend writes it; empty when all are there. */
  readonly missing: readonly string[];
}

/** Each chain's statements (hook line and rules) in an nft table, counters' figures left out: a script's body or `nft list table` output. */
function nftChains(lines: readonly string[]): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of lines) {
    const line = raw.trim().replace(/\s+/g, ' ').replace(/ counter packets \d+ bytes \d+/, ' counter');
    const open = /^chain (\S+) \{$/.exec(line);
    if (open) chains.set(open[1]!, (current = []));
    else if (line === '}') current = undefined;
    else if (current && line !== '') current.push(line);
  }
  return chains;
}

/** The statements of `body` (a table's chains, as nftTableScript takes them) that `listing` (`nft list table` output) lacks, each as `chain <name>: <statement>`. */
export function nftMissingRules(body: readonly string[], listing: string): string[] {
  const listed = nftChains(listing.split('\n'));
  return [...nftChains(body)].flatMap(([chain, wanted]) => wanted.filter((st) => !listed.get(chain)?.includes(st)).map((st) => `chain ${chain}: ${st}`));
}

/** One iptables rule as `iptables -S` prints it and iptables-restore reads it (the arguments after -A or -C): an argument with a space or a quote quoted. */
export function iptRuleText(args: readonly string[]): string {
  return args.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

/** What the host holds of `r` under `backend`: nftables compares the listed table with the rules; iptables asks `-C` for each rule and jump. */
export async function rulesetState(r: Ruleset, backend: FirewallBackend): Promise<RulesetState> {
  if (backend === 'nftables') {
    const args = ['list', 'table', NFT_FAMILY, r.nftTable];
    const listed = await runCommand('nft', args);
    if (listed.code !== 0) {
      if (/No such file or directory/.test(listed.stderr)) return { present: false, missing: [] };
      throw new WeftError('WEFT_HOST_SETUP', `nft ${args.join(' ')}: ${listed.stderr.trim() || `exit code ${listed.code}`}`, { command: ['nft', ...args] });
    }
    return { present: true, missing: nftMissingRules(r.nftBody, listed.stdout) };
  }
  if ((await ipt(r.ipt, ['-S', r.ipt.chain])).code !== 0) return { present: false, missing: [] };
  const missing: string[] = [];
  for (const rule of r.iptRules) if ((await ipt(r.ipt, ['-C', r.ipt.chain, ...rule])).code !== 0) missing.push(`-A ${r.ipt.chain} ${iptRuleText(rule)}`);
  for (const jump of r.ipt.jumps) if ((await ipt(r.ipt, ['-C', ...jump])).code !== 0) missing.push(`-A ${iptRuleText(jump)}`);
  return { present: true, missing };
}
