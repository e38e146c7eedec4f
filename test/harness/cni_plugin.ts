// Executes the installed weft CNI plugin as a runtime does: a fresh process in
// the node's network namespace, only the CNI_* variables and PATH in its
// environment, one plugin's config on stdin. For the verbs podman never calls
// (CHECK, GC, STATUS) and the error paths.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface PluginCall {
  containerId?: string;
  netns?: string;
  ifname?: string;
  path?: string;
  /** Extra or replacing variables; undefined values are left out. */
  env?: Record<string, string | undefined>;
}

export interface PluginAnswer {
  status: number;
  /** stdout as JSON, or undefined when empty. */
  json: Record<string, unknown> | undefined;
  stderr: string;
}

/** The plugin's config object as a runtime passes it: the conflist's first plugin with the list's name and version. */
export function pluginConf(confDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const list = JSON.parse(readFileSync(join(confDir, '10-weft.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  return { ...list.plugins[0], cniVersion: list.cniVersion, name: list.name, ...extra };
}

/** Runs the plugin executable `plugin` (weft's, or any other) in namespace `ns`; CNI_PATH defaults to its dir, then Debian's. */
export function callPlugin(plugin: string, ns: string, command: string, stdin: string | Record<string, unknown>, call: PluginCall = {}): PluginAnswer {
  const vars: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifname ?? 'eth0',
    CNI_PATH: call.path ?? `${dirname(plugin)}:/usr/lib/cni`,
    ...call.env,
  };
  const env = Object.fromEntries(Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined));
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, plugin], {
    env,
    input: typeof stdin === 'string' ? stdin : JSON.stringify(stdin),
    encoding: 'utf8',
    timeout: 20_000,
    killSignal: 'SIGKILL',
  });
  if (r.error) throw new Error(`${plugin} ${command} in ${ns}: ${r.error.message}`);
  const out = r.stdout.trim();
  return { status: r.status ?? -1, json: out ? (JSON.parse(out) as Record<string, unknown>) : undefined, stderr: r.stderr };
}
