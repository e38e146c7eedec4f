// Promisified execFile with a mandatory time bound, for the test lab.
//
// Every command the lab runs goes through `run` (async) or `runSync` (only in
// exit/signal handlers). Failures throw an ExecError whose message names the
// context (usually the network namespace) and the exact command line.

import { execFile, execFileSync } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Hard bound; the child is SIGKILLed when it runs longer. Default 10 s. */
  timeoutMs?: number;
  /** Return a non-zero exit code instead of throwing (timeouts still throw). */
  allowFail?: boolean;
  /** Extra environment, merged over process.env. */
  env?: Record<string, string>;
  /** Named in error messages, e.g. `ns wl1234abcd-n1`. */
  context?: string;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

export class ExecError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly result: ExecResult & { timedOut: boolean },
  ) {
    super(message);
    this.name = 'ExecError';
  }
}

/** Shell-like rendering of a command line, for messages only. */
export function formatCommand(file: string, args: readonly string[]): string {
  return [file, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

function tail(text: string, maxChars = 2000): string {
  const t = text.trim();
  return t.length <= maxChars ? t : `...${t.slice(t.length - maxChars)}`;
}

export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const command = formatCommand(file, args);
  const where = opts.context ? `${opts.context}: ` : '';
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        if (e.killed && e.signal === 'SIGKILL') {
          reject(
            new ExecError(
              `${where}\`${command}\` timed out after ${timeoutMs} ms${stderr ? `: ${tail(stderr)}` : ''}`,
              command,
              { code: -1, stdout, stderr, timedOut: true },
            ),
          );
          return;
        }
        if (typeof e.code === 'number') {
          const result = { code: e.code, stdout, stderr };
          if (opts.allowFail) {
            resolve(result);
            return;
          }
          reject(
            new ExecError(
              `${where}\`${command}\` exited with code ${e.code}${stderr.trim() ? `: ${tail(stderr)}` : ''}`,
              command,
              { ...result, timedOut: false },
            ),
          );
          return;
        }
        if (e.signal) {
          const result = { code: 128, stdout, stderr };
          if (opts.allowFail) {
            resolve(result);
            return;
          }
          reject(
            new ExecError(`${where}\`${command}\` killed by ${e.signal}${stderr ? `: ${tail(stderr)}` : ''}`, command, {
              ...result,
              timedOut: false,
            }),
          );
          return;
        }
        // Spawn failure (ENOENT, ...) or maxBuffer: never "allowed".
        reject(
          new ExecError(`${where}\`${command}\` failed: ${e.message}`, command, {
            code: -1,
            stdout: stdout ?? '',
            stderr: stderr ?? '',
            timedOut: false,
          }),
        );
      },
    );
    // Nothing we run reads stdin; close it so e.g. `etcdctl put k` cannot hang.
    child.stdin?.end();
  });
}

/** Synchronous best-effort variant for exit/signal handlers: never throws. */
export function runSync(file: string, args: readonly string[], timeoutMs = 5000): boolean {
  try {
    execFileSync(file, [...args], { timeout: timeoutMs, killSignal: 'SIGKILL', stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export { sleep } from '../harness/until.js';

/** Blocking sleep, only for synchronous exit handlers. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
