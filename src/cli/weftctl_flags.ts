// weftctl's command line: its commands, its flag table and its usage text,
// apart from the commands' code so the docs test can read them without running weftctl.

import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR, DEFAULT_CNI_NETWORK } from '../cni/install.js';
import { DEFAULT_BRIDGE, DEFAULT_CNI_DATA_DIR, DEFAULT_IPAM_DIR } from '../cni/netconf.js';
import { DEFAULT_METRICS_ADDR, DEFAULT_NETWORK, DEFAULT_STATE_DIR, DEFAULT_SUBNET_FILE, DEFAULT_SUBNET_LEN, DEFAULT_UDP_PORT, DEFAULT_VNI, ENCRYPTION_MODES } from '../constants.js';
import { DEFAULT_WG_PORT } from '../wireguard/constants.js';
import { ETCD_FLAGS } from './etcd_flags.js';
import type { FlagSpec } from './flags.js';

/** The commands, each as its words (`cni install` is two). */
export const WEFTCTL_COMMANDS: readonly string[] = ['init', 'config', 'encryption', 'leases', 'rotate-key', 'status', 'check', 'cni install'];

export const WEFTCTL_FLAGS: readonly FlagSpec[] = [
  ...ETCD_FLAGS,
  { name: 'network', type: 'string', help: 'init: cluster pod network', default: DEFAULT_NETWORK, env: false },
  { name: 'subnet-len', type: 'string', help: 'init: prefix length of each node subnet', default: String(DEFAULT_SUBNET_LEN), env: false },
  { name: 'vni', type: 'string', help: 'init: VXLAN-GPE network identifier', default: String(DEFAULT_VNI), env: false },
  { name: 'port', type: 'string', help: 'init: UDP port of the nodes', default: String(DEFAULT_UDP_PORT), env: false },
  { name: 'encryption', type: 'string', help: `init: encryption between nodes: ${ENCRYPTION_MODES.join(', ')}`, default: 'off', env: false },
  { name: 'wireguard-port', type: 'string', help: 'init: UDP port of the nodes\' WireGuard sockets', default: String(DEFAULT_WG_PORT), env: false },
  { name: 'force', type: 'boolean', help: 'init: replace a different existing config', env: false },
  { name: 'json', type: 'boolean', help: 'leases, status, check: print JSON instead of a table', env: false },
  { name: 'metrics-addr', type: 'string', help: 'status, check: the local weftd\'s --metrics-addr', default: DEFAULT_METRICS_ADDR },
  { name: 'state-dir', type: 'string', help: 'rotate-key: the local weftd\'s --state-dir', default: DEFAULT_STATE_DIR },
  { name: 'timeout', type: 'string', help: 'rotate-key: seconds to wait for the new key in the lease', default: '30', env: false },
  { name: 'probe', type: 'boolean', help: 'check: ping each peer\'s overlay address (--probe=false skips it)', default: 'true', env: false },
  { name: 'bin-dir', type: 'string', help: 'cni install: where runtimes find CNI plugins', default: DEFAULT_CNI_BIN_DIR, env: false },
  { name: 'conf-dir', type: 'string', help: 'cni install: where runtimes read *.conflist', default: DEFAULT_CNI_CONF_DIR, env: false },
  { name: 'network-name', type: 'string', help: 'cni install: the CNI network name (podman --network NAME)', default: DEFAULT_CNI_NETWORK, env: false },
  { name: 'bridge', type: 'string', help: 'cni install, check: the bridge pods attach to', default: DEFAULT_BRIDGE, env: false },
  { name: 'subnet-file', type: 'string', help: 'cni install, check: the subnet file weftd writes (check: default, the one weftd names)', default: DEFAULT_SUBNET_FILE },
  { name: 'data-dir', type: 'string', help: 'cni install: the plugin\'s per-attachment state', default: DEFAULT_CNI_DATA_DIR, env: false },
  { name: 'ipam-dir', type: 'string', help: 'cni install: host-local\'s reservations', default: DEFAULT_IPAM_DIR, env: false },
  { name: 'help', type: 'boolean', help: 'print this help and exit', env: false },
  { name: 'version', type: 'boolean', help: 'print the version and exit', env: false },
];

export const WEFTCTL_USAGE = `Usage: weftctl <command> [flags]

Commands:
  init [--network CIDR] [--subnet-len N] [--vni N] [--port N] [--encryption MODE] [--wireguard-port N] [--force]
                 write the cluster network config to etcd
  config         print the network config
  encryption [off|wireguard|wireguard-only]
                 print, or change on the running cluster, the encryption between nodes
                 (docs/encryption.md)
  leases         list the subnet leases: subnet, node, public IP, WireGuard key, expires in,
                 and why a lease is left out of the route tables
  rotate-key [--state-dir D] [--timeout S]
                 give the local weftd a new WireGuard key, and wait until its lease publishes it
  status [--json] [--metrics-addr HOST:PORT]
                 ask the local weftd: node, subnet, lease, engine, readiness, peers, counters
  check [--json] [--metrics-addr HOST:PORT] [--bridge B] [--subnet-file F] [--probe=false]
                 check this node (weftd, lease, subnet file, TUN, MTU, bridge, forwarding,
                 firewall, peers, etcd): one line each, ok / warn / fail and what to do;
                 exits 0 / 1 / 2 (docs/troubleshooting.md)
  cni install [--bin-dir D] [--conf-dir D] [--network-name N] [--bridge B]
              [--subnet-file F] [--data-dir D] [--ipam-dir D]
                 install the weft CNI plugin and its conflist (weft, then portmap),
                 and link bridge, host-local, portmap and loopback into --bin-dir
                 from Debian's /usr/lib/cni (or /usr/libexec/cni, /opt/cni/bin)
                 when it lacks them`;
