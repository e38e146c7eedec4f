// The agent's own cost, as every Prometheus client library exports it:
// process CPU, resident memory, open fds, start time, and Node's heap and
// event-loop lag, from prom-client's default collectors on a registry of
// their own (weft's metrics stay in metrics.ts, rendered from a status).

import { Registry, collectDefaultMetrics } from 'prom-client';

let registry: Registry | undefined;

/** The default collectors' exposition text; the collectors start on the first call. */
export function processMetrics(): Promise<string> {
  if (!registry) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry });
  }
  return registry.metrics();
}
