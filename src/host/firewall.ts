// Rules of weft's own in the host firewall: one nftables table, or one
// iptables chain with its jumps, per purpose, replaced whole on start and
// removed whole on stop without touching anybody else's rules. nftables
// (`nft`) where it is installed, else iptables. Control-plane rate only;
// every failure names the command.

import { WeftError } from '../errors.js';
import { type CmdResult, CommandMissing, mustRun, runCommand } from './command.js';

export type FirewallBackend = 'nftables' | 'iptables';

export const NFT_FAMILY = 'ip';

/** nftables where `nft` is installed, else iptables where it is; neither is an error saying what needed them. */
export async function detectBackend(purpose: string): Promise<FirewallBackend> {
  for (const [backend, file] of [['nftables', 'nft'], ['iptables', 'iptables']] as const) {
    try {
      await runCommand(file, ['--version']);
      return backend;
    } catch (err) {
      if (!(err instanceof CommandMissing)) throw err;
    }
  }
  throw new WeftError('WEFT_HOST_SETUP', `${purpose} needs nft (nftables) or iptables on PATH, and neither was found`, { command: ['nft', '--version'] });
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
}

const ipt = (c: IptChain, args: readonly string[]): Promise<CmdResult> => runCommand('iptables', ['-w', '5', '-t', c.table, ...args]);
const iptMust = (c: IptChain, args: readonly string[]): Promise<string> => mustRun('iptables', ['-w', '5', '-t', c.table, ...args]);

async function replaceNftTable(table: string, body: readonly string[]): Promise<void> {
  await mustRun('nft', ['-f', '-'], nftTableScript(table, body));
}

async function removeNftTable(table: string): Promise<void> {
  await mustRun('nft', ['-f', '-'], nftRemoveTableScript(table));
}

/** The chain created when absent, else flushed, then filled with `rules`; each jump added once. Idempotent. */
async function replaceIptChain(c: IptChain, rules: readonly (readonly string[])[]): Promise<void> {
  if ((await ipt(c, ['-S', c.chain])).code !== 0) await iptMust(c, ['-N', c.chain]);
  else await iptMust(c, ['-F', c.chain]);
  for (const rule of rules) await iptMust(c, ['-A', c.chain, ...rule]);
  for (const jump of c.jumps) if ((await ipt(c, ['-C', ...jump])).code !== 0) await iptMust(c, ['-A', ...jump]);
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
