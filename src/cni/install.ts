// `weftctl cni install`: puts the plugin where runtimes look (the executable
// in the plugin dir, the conflist in the config dir), as flannel's DaemonSet
// does; each file written atomically and only when its content changes.

import { mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../host/atomic_write.js';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { treePath } from '../tree.js';
import { VERSION } from '../version.js';
import { parseNetConf } from './netconf.js';
import { CniError, versionInfo } from './spec.js';

export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CNI_NETWORK = 'weft';
/** The conflist's version: what runtimes of today (libcni 1.x) parse. */
export const CONFLIST_VERSION = '1.0.0';
export const CONFLIST_NAME = '10-weft.conflist';

export interface InstallOptions {
  readonly binDir: string;
  readonly confDir: string;
  readonly networkName: string;
  readonly bridge: string;
  readonly subnetFile: string;
  readonly dataDir: string;
  readonly ipamDir: string;
}

/**
 * The installed tree's plugin entry, by absolute path (runtimes strip the
 * environment): main.js and what it imports bundled into one CommonJS file
 * by the build, which Node starts about 11 ms sooner than the ES module graph.
 */
export const PLUGIN_ENTRY = treePath('dist/cni/plugin.cjs');

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The executable: a /bin/sh script that answers VERSION itself (runtimes ask
 * before every ADD and DEL, and sh starts in a millisecond where Node takes
 * tens) and hands every other verb to Node with the plugin entry.
 */
export function renderPluginScript(node: string, entry: string): string {
  return [
    '#!/bin/sh',
    `# weft CNI plugin ${VERSION}, written by \`weftctl cni install\`: runs ${entry}.`,
    '# VERSION is answered here, without starting Node.',
    'if [ "$CNI_COMMAND" = VERSION ]; then',
    `  printf '%s\\n' ${shellQuote(JSON.stringify(versionInfo()))}`,
    '  exit 0',
    'fi',
    `exec ${shellQuote(node)} ${shellQuote(entry)}`,
    '',
  ].join('\n');
}

/** The conflist: weft (bridge + host-local underneath), then portmap for `-p` / hostPort. */
export function renderConflist(o: InstallOptions): string {
  const conflist = {
    cniVersion: CONFLIST_VERSION,
    name: o.networkName,
    plugins: [
      { type: 'weft', bridge: o.bridge, subnetFile: o.subnetFile, dataDir: o.dataDir, ipamDir: o.ipamDir },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  return `${JSON.stringify(conflist, null, 2)}\n`;
}

/** Writes `content` to `path` via a temp file and rename, unless it is already there; returns whether it wrote. */
function writeIfChanged(path: string, content: string, mode: number): boolean {
  try {
    if (readFileSync(path, 'utf8') === content) return false;
  } catch {
    // absent or unreadable: write it
  }
  try {
    writeFileAtomic(path, content, mode);
  } catch (err) {
    throw new WeftError('WEFT_HOST_SETUP', `cannot write ${path}: ${(err as Error).message}`, { path });
  }
  return true;
}

/** Flag names of the plugin's config fields, for errors about them. */
const FIELD_FLAGS: Record<string, string> = { name: 'network-name', bridge: 'bridge', subnetFile: 'subnet-file', dataDir: 'data-dir', ipamDir: 'ipam-dir' };

/** The plugin's config as the plugin itself will read it: its own parser is the check. */
export function checkInstallOptions(o: InstallOptions): void {
  const plugin = JSON.parse(renderConflist(o)).plugins[0] as Record<string, unknown>;
  try {
    parseNetConf(JSON.stringify({ ...plugin, cniVersion: CONFLIST_VERSION, name: o.networkName }));
  } catch (err) {
    if (!(err instanceof CniError)) throw err;
    const field = /config field "(\w+)"/.exec(err.message)?.[1] ?? 'name';
    const flag = FIELD_FLAGS[field] ?? field;
    throw new WeftError('WEFT_BAD_FLAG', `--${flag}: ${err.message.replace(/^config field "\w+"/, 'the value')}`, { flag });
  }
}

export function installCni(o: InstallOptions, node: string = process.execPath): { path: string; written: boolean }[] {
  checkInstallOptions(o);
  for (const dir of [o.binDir, o.confDir]) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new WeftError('WEFT_HOST_SETUP', `cannot create ${dir}: ${(err as Error).message}`, { path: dir });
    }
  }
  const plugin = join(o.binDir, 'weft');
  const conflist = join(o.confDir, CONFLIST_NAME);
  return [
    { path: plugin, written: writeIfChanged(plugin, renderPluginScript(node, PLUGIN_ENTRY), 0o755) },
    { path: conflist, written: writeIfChanged(conflist, renderConflist(o), 0o644) },
  ];
}
