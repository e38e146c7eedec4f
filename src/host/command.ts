// Running the host's configuration commands (ip, nft, iptables): found in
// the directories given, bounded in time, at control-plane rate only, every
// failure a WEFT_HOST_SETUP error that names the command line.

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../errors.js';

const CMD_TIMEOUT_MS = 10_000;

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command is not installed (ENOENT), told apart so callers can fall back. */
export class CommandMissing extends Error {}

/**
 * What a host command sees of weftd's environment: PATH and the locale only.
 * weftd's own environment can hold the etcd password (WEFT_ETCD_PASSWORD),
 * which no child has any use for.
 */
export function commandEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const k of ['LANG', 'LC_ALL']) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

/** The first executable called `name` in `dirs`, in order (an empty entry is skipped, not read as the working directory); undefined when none has one. */
export function findExecutable(name: string, dirs: readonly string[]): string | undefined {
  for (const dir of dirs) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Runs `file args` (with `input` on stdin); a non-zero exit is returned, not thrown. */
export function runCommand(file: string, args: readonly string[], input?: string): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { timeout: CMD_TIMEOUT_MS, env: commandEnv() }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      if (e.code === 'ENOENT') return reject(new CommandMissing(`${file}: command not found`));
      if (typeof e.code === 'number' && !e.killed) return resolve({ code: e.code, stdout, stderr });
      reject(hostError(file, args, e.killed ? `timed out after ${CMD_TIMEOUT_MS} ms` : e.message));
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

function hostError(file: string, args: readonly string[], why: string, extra: Record<string, unknown> = {}): WeftError {
  return new WeftError('WEFT_HOST_SETUP', `${[file, ...args].join(' ')}: ${why.trim()}`, { command: [file, ...args], ...extra });
}

/** Runs a command that must succeed; its stdout. */
export async function mustRun(file: string, args: readonly string[], input?: string): Promise<string> {
  let r: CmdResult;
  try {
    r = await runCommand(file, args, input);
  } catch (err) {
    if (err instanceof CommandMissing) throw hostError(file, args, err.message);
    throw err;
  }
  if (r.code !== 0) throw hostError(file, args, r.stderr || r.stdout || `exit code ${r.code}`, input === undefined ? {} : { input });
  return r.stdout;
}
