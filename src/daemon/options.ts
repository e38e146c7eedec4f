// weftd's options, as the daemon takes them: typed and validated (the CLI
// parses them from flags and the environment, cli/weftd_flags.ts).

import type { EngineKind } from '../dataplane/engine.js';
import type { LogLevel } from '../log.js';
import type { ListenAddr } from '../net/listen_addr.js';

export interface DaemonOptions {
  /** Where etcd is, and weft's key prefix in it: for messages (the registry seam does the I/O). */
  readonly etcdEndpoints: string[];
  readonly etcdPrefix: string;
  readonly nodeName: string;
  readonly publicIp: string | undefined;
  readonly iface: string | undefined;
  readonly engine: EngineKind;
  readonly queues: number;
  readonly offload: boolean;
  readonly udpGso: boolean;
  readonly udpGro: boolean;
  readonly tunName: string;
  readonly mtu: number | undefined;
  readonly subnetFile: string;
  readonly stateDir: string;
  readonly leaseTtlS: number;
  readonly resyncIntervalS: number;
  readonly statsIntervalS: number;
  /** Where /metrics, /healthz, /readyz and /status listen; null: off. */
  readonly metricsAddr: ListenAddr | null;
  readonly etcdGraceS: number;
  readonly ipMasq: boolean;
  readonly releaseOnExit: boolean;
  readonly podEncapFilter: boolean;
  readonly logLevel: LogLevel;
}
