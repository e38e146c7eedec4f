// The agent's own cost, as every Prometheus client library exports it:
// process CPU, resident memory, open fds, start time, and Node's heap and
// event-loop lag, from prom-client's default collectors on a registry of
// their own (weft's metrics stay in metrics.ts, rendered from a status). prom-client is loaded on
// the first scrape, not at start: it is a tenth of what weftd's start would load otherwise.

import type { Registry } from 'prom-client';

let registry: Promise<Registry> | undefined;

/** The default collectors' exposition text; prom-client is loaded and the collectors start on the first call. */
export async function processMetrics(): Promise<string> {
  registry ??= import('prom-client').then(({ Registry, collectDefaultMetrics }) => {
    const r = new Registry();
    collectDefaultMetrics({ register: r });
    return r;
  });
  return (await registry).metrics();
}
