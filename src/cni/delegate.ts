// The delegates weft hands the pod's interface to, as flannel's plugin does:
// the bridge config rendered from the node's subnet file (a pure function),
// and running a plugin found on CNI_PATH with the spec's environment.

import { spawnSync } from 'node:child_process';
import { findExecutable } from '../host/command.js';
import { formatCidr, formatIp } from '../net/ipv4.js';
import { type SubnetEnv, gatewayOf } from '../host/subnet_env.js';
import type { WeftNetConf } from './netconf.js';
import { type CniCommand, CniCode, CniError } from './spec.js';

/** Debian's bridge (containernetworking-plugins 1.1.1) speaks up to 1.0.0; 1.1.0 results have the same shape. */
const DELEGATE_MAX_VERSION = '1.0.0';
const DELEGATE_TIMEOUT_MS = 60_000;

export type DelegateConfig = Record<string, unknown>;

/**
 * The bridge + host-local config for one node subnet: bridge `conf.bridge`
 * with the subnet's first address as gateway and the pods' default route,
 * the node's MTU, hairpin on, no masquerade (pods reach each other with
 * their own addresses), reservations under conf.ipamDir. No route for the
 * cluster network beside the default one: bridge's CHECK would want it
 * gatewayless, and the default route already covers it. `forceAddress`
 * lets bridge replace an address left from an earlier subnet.
 */
export function bridgeConfig(conf: WeftNetConf, env: SubnetEnv, forceAddress: boolean): DelegateConfig {
  return {
    cniVersion: conf.cniVersion === '1.1.0' ? DELEGATE_MAX_VERSION : conf.cniVersion,
    name: conf.name,
    type: 'bridge',
    bridge: conf.bridge,
    isGateway: true,
    isDefaultGateway: true,
    forceAddress,
    ipMasq: false,
    hairpinMode: true,
    mtu: env.mtu,
    ipam: {
      type: 'host-local',
      dataDir: conf.ipamDir,
      ranges: [[{ subnet: formatCidr(env.subnet), gateway: formatIp(gatewayOf(env.subnet)) }]],
    },
  };
}

/** The first executable named `type` in the CNI_PATH directories. */
export function findPlugin(type: string, path: readonly string[]): string {
  const file = findExecutable(type, path);
  if (file !== undefined) return file;
  throw new CniError(CniCode.BadEnvironment, `delegate plugin "${type}" not found on CNI_PATH (${path.join(':') || 'empty'}); install containernetworking-plugins`);
}

/**
 * Runs `config.type` with `command` and the runtime's own CNI_* variables,
 * the config on stdin, its stderr passed through. Returns its result (or
 * undefined for an empty stdout); its failure is thrown with its own code
 * and a message prefixed by its name.
 */
export function runDelegate(command: CniCommand, config: DelegateConfig, path: readonly string[], env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  const type = String(config.type);
  const file = findPlugin(type, path);
  const r = spawnSync(file, [], {
    input: JSON.stringify(config),
    env: { ...env, CNI_COMMAND: command },
    stdio: ['pipe', 'pipe', 'inherit'],
    timeout: DELEGATE_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    maxBuffer: 4 << 20,
  });
  if (r.error) throw new CniError(CniCode.DelegateFailed, `${type} ${command}: ${r.error.message}`);
  const out = r.stdout.toString('utf8').trim();
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = out === '' ? undefined : (JSON.parse(out) as Record<string, unknown>);
  } catch {
    parsed = undefined;
  }
  if (r.status === 0) {
    if (out !== '' && parsed === undefined) throw new CniError(CniCode.DelegateFailed, `${type} ${command}: printed a result that is not JSON: ${out.slice(0, 200)}`);
    return parsed;
  }
  if (parsed && typeof parsed.code === 'number' && typeof parsed.msg === 'string') {
    throw new CniError(parsed.code, `${type}: ${parsed.msg}`, typeof parsed.details === 'string' ? parsed.details : '');
  }
  throw new CniError(CniCode.DelegateFailed, `${type} ${command} exited with ${r.status ?? r.signal}${out ? `: ${out.slice(0, 200)}` : ''}`);
}
