// `weftctl check`: gathers the facts on this node, runs every check, prints
// the report; its exit status is 0 all ok, 1 a warning, 2 a failure.
// Loaded by weftctl only for this command.

import { DEFAULT_METRICS_ADDR } from '../constants.js';
import { DEFAULT_BRIDGE, IFNAME_RE } from '../cni/netconf.js';
import { EXIT_STATUS, overall, runChecks } from '../check/checks.js';
import { gatherFacts } from '../check/gather.js';
import { formatReport, reportJson } from '../check/report.js';
import { parseListenAddr } from '../net/listen_addr.js';
import { etcdConnection } from './etcd_flags.js';
import { type FlagValues, badFlag, stringFlag } from './flags.js';

/** Runs the checks and prints them; resolves to the exit status. */
export async function check(values: FlagValues): Promise<number> {
  const metricsAddr = parseListenAddr(stringFlag(values, 'metrics-addr') ?? DEFAULT_METRICS_ADDR, (why) => badFlag('metrics-addr', why));
  const bridge = stringFlag(values, 'bridge') ?? DEFAULT_BRIDGE;
  if (!IFNAME_RE.test(bridge)) throw badFlag('bridge', `must be an interface name of at most 15 characters, got "${bridge}"`);
  const facts = await gatherFacts({
    metricsAddr,
    bridge,
    subnetFile: stringFlag(values, 'subnet-file'),
    probe: values.probe !== false,
    // weftd's endpoints and prefix stand in for the flags not given.
    etcd: (s) => etcdConnection({ ...values, 'etcd-endpoints': stringFlag(values, 'etcd-endpoints') ?? s?.etcd.endpoints.join(','), 'etcd-prefix': stringFlag(values, 'etcd-prefix') ?? s?.etcd.prefix }),
  });
  const results = runChecks(facts);
  process.stdout.write(values.json === true ? reportJson(results) : formatReport(results));
  return EXIT_STATUS[overall(results)];
}
