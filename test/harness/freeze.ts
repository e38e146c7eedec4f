// Freezing a process for a fault test: SIGSTOP, then waiting until the
// kernel has stopped every one of its threads, so nothing it had in hand
// gets answered after the test believes it frozen.

import { readFileSync, readdirSync } from 'node:fs';
import { sleep } from './until.js';

/** The scheduler state letter of each thread of `pid` (T: stopped). */
function threadStates(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  });
}

/** Sends SIGSTOP and resolves once every thread is stopped; throws after `timeoutMs`. */
export async function freeze(pid: number, timeoutMs = 5000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = Date.now() + timeoutMs;
  while (!threadStates(pid).every((s) => s === 'T' || s === 't')) {
    if (Date.now() > deadline) throw new Error(`pid ${pid}: not every thread stopped ${timeoutMs} ms after SIGSTOP (${threadStates(pid).join('')})`);
    await sleep(5);
  }
}

export function thaw(pid: number): void {
  process.kill(pid, 'SIGCONT');
}
