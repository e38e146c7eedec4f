// Runs weftd or weftctl as an operator would, returning status and output.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `nodeArgs` go to Node before the script (e.g. --import). */
export async function runCli(script: string, args: string[], timeoutMs = 20_000, nodeArgs: string[] = []): Promise<CliResult> {
  try {
    const r = await run(process.execPath, [...nodeArgs, script, ...args], { timeout: timeoutMs });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
