// Network-namespace helpers for the test lab. Nothing here touches the root
// namespace's links, addresses or routes: devices are created from inside a
// lab namespace (`ip -n <ns> link add ... peer ... netns <other>`).

import { readdirSync, readFileSync } from 'node:fs';
import { run, runSync, type RunOptions } from './exec.js';

/** Names the lab creates: `wl<pid % 10000><4 hex>-<role>`. */
export const LAB_NS_RE = /^(wl(\d+)[0-9a-f]{4})-/;

export async function listNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { context: 'root (list namespaces)', timeoutMs: 5000 });
  return parseNetnsList(r.stdout);
}

export function parseNetnsList(out: string): string[] {
  // Lines look like `name` or `name (id: 3)`.
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

export async function addNamespace(name: string): Promise<void> {
  await run('ip', ['netns', 'add', name], { context: `ns ${name}`, timeoutMs: 5000 });
}

export async function deleteNamespace(name: string, opts: RunOptions = {}): Promise<void> {
  await run('ip', ['netns', 'del', name], { context: `ns ${name}`, timeoutMs: 10_000, ...opts });
}

export function deleteNamespaceSync(name: string): boolean {
  return runSync('ip', ['netns', 'del', name], 5000);
}

/** `ip -n <ns> args...` */
export async function ipIn(ns: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run('ip', ['-n', ns, ...args], { context: `ns ${ns}`, ...opts });
  return r.stdout;
}

/** True if the process exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (state) follows the parenthesised comm, which may contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Mount points under `dir` in this process's mount namespace, in the kernel's order (a mount before those on top of it). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m.startsWith(`${dir}/`));
}

/** The PIDs in /proc now (zombies included). */
export function livePids(): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (/^\d+$/.test(e)) pids.push(Number(e));
  }
  return pids;
}

/**
 * Deletes namespaces left by earlier lab runs whose creator is gone. The
 * prefix only holds pid % 10000, so a prefix counts as live when ANY running
 * process has that residue (or exactly that pid): conservative, a live run's
 * namespaces are never deleted. Never kills processes. Best effort: returns
 * the namespaces it deleted and the errors it met.
 */
export async function cleanupStaleNamespaces(): Promise<{ deleted: string[]; errors: string[] }> {
  const deleted: string[] = [];
  const errors: string[] = [];
  let names: string[];
  try {
    names = await listNamespaces();
  } catch (e) {
    return { deleted, errors: [String((e as Error).message)] };
  }
  const candidates = names.filter((n) => LAB_NS_RE.test(n));
  if (candidates.length === 0) return { deleted, errors };
  const pids = livePids().filter(pidAlive);
  const residues = new Set(pids.map((p) => p % 10000));
  const exact = new Set(pids);
  for (const name of candidates) {
    const m = LAB_NS_RE.exec(name);
    if (!m) continue;
    const owner = Number(m[2]);
    if (residues.has(owner) || exact.has(owner)) continue;
    try {
      await deleteNamespace(name);
      deleted.push(name);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  return { deleted, errors };
}
