// Echo probes with the host's ping (iputils): how many of a few echo
// requests to an address came back, many addresses at once with a bound on
// how many pings run together and on the time they all take. Control-plane
// rate only.

import { runCommand } from './command.js';

export interface PingResult {
  readonly address: string;
  readonly sent: number;
  readonly received: number;
  /** Why ping could not send at all (no route, say); received is then 0. */
  readonly error?: string;
}

/** One address: `count` requests 0.2 s apart, the last waited for at most `waitS` seconds. CommandMissing without ping. */
export async function ping(address: string, count: number, waitS: number): Promise<PingResult> {
  const r = await runCommand('ping', ['-n', '-q', '-c', String(count), '-i', '0.2', '-W', String(waitS), address]);
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  if (m) return { address, sent: Number(m[1]), received: Number(m[2]) };
  return { address, sent: 0, received: 0, error: (r.stderr || r.stdout).trim().replace(/^ping: /, '') || `ping exited ${r.code}` };
}

/**
 * Every address, at most `parallel` pings at a time, in the order given;
 * an address whose ping has not started `budgetMs` after the call is left
 * undefined (not probed), so the whole takes at most about budgetMs plus
 * one ping.
 */
export async function pingAll(addresses: readonly string[], o: { count: number; waitS: number; parallel: number; budgetMs: number }): Promise<(PingResult | undefined)[]> {
  const results: (PingResult | undefined)[] = new Array(addresses.length).fill(undefined);
  const deadline = Date.now() + o.budgetMs;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < addresses.length && Date.now() < deadline) {
      const i = next++;
      results[i] = await ping(addresses[i]!, o.count, o.waitS);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.parallel, addresses.length) }, worker));
  return results;
}
