// `weftctl cni install`: puts the plugin where runtimes look (the executable
// in the plugin dir, the conflist in the config dir), as flannel's DaemonSet
// does; each file written atomically and only when its content changes. The
// plugin dir is made to hold every plugin a pod on weft needs, because
// containerd 1.x looks in that one directory only.

import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { symlinkAtomic, writeFileAtomic } from '../host/atomic_write.js';
import { findExecutable } from '../host/command.js';
import { join, resolve } from 'node:path';
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
/**
 * The plugins a pod on weft needs beside weft itself: its delegates, the
 * conflist's portmap, and the loopback that containerd's CRI attaches to
 * every pod from the same directory.
 */
export const COMPANION_PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback'] as const;
/** Where containernetworking-plugins lives: Debian and Ubuntu, then Fedora and RHEL, then the upstream tarball. */
export const PLUGIN_SOURCE_DIRS: readonly string[] = ['/usr/lib/cni', '/usr/libexec/cni', '/opt/cni/bin'];

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

/** A file that is there and is not a symlink (a dangling link may be replaced, a file never). */
function isFile(path: string): boolean {
  try {
    return !lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** What install did about one companion plugin in the plugin dir. */
export type CompanionOutcome =
  | { readonly name: string; readonly path: string; readonly state: 'present' }
  | { readonly name: string; readonly path: string; readonly state: 'linked'; readonly target: string }
  | { readonly name: string; readonly path: string; readonly state: 'missing'; readonly searched: readonly string[] };

/**
 * Makes `binDir` hold every companion plugin: one already there (a file or a
 * working link) is left alone; otherwise a symlink to the first of `sources`
 * that has it replaces nothing but a dangling link. Symlinks, not copies, so
 * the distribution's upgrades of the plugins take effect.
 */
export function linkCompanions(binDir: string, sources: readonly string[]): CompanionOutcome[] {
  const others = sources.map((d) => resolve(d)).filter((d) => d !== resolve(binDir));
  return COMPANION_PLUGINS.map((name): CompanionOutcome => {
    const path = join(binDir, name);
    if (findExecutable(name, [binDir])) return { name, path, state: 'present' };
    const target = findExecutable(name, others);
    if (!target || isFile(path)) return { name, path, state: 'missing', searched: [binDir, ...others] };
    try {
      symlinkAtomic(target, path);
    } catch (err) {
      throw new WeftError('WEFT_HOST_SETUP', `cannot link ${path} to ${target}: ${(err as Error).message}`, { path });
    }
    return { name, path, state: 'linked', target };
  });
}

export interface WrittenFile {
  readonly path: string;
  readonly written: boolean;
}

/** What install did, in the order it did it. */
export interface InstallResult {
  readonly plugin: WrittenFile;
  readonly companions: CompanionOutcome[];
  readonly conflist: WrittenFile;
}

/**
 * The plugin, then its companions, then the conflist: a runtime that watches
 * the conf dir (containerd does) never loads a network whose plugins are
 * not in place yet.
 */
export function installCni(o: InstallOptions, node: string = process.execPath, sources: readonly string[] = PLUGIN_SOURCE_DIRS): InstallResult {
  checkInstallOptions(o);
  for (const dir of [o.binDir, o.confDir]) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new WeftError('WEFT_HOST_SETUP', `cannot create ${dir}: ${(err as Error).message}`, { path: dir });
    }
  }
  const plugin = join(o.binDir, 'weft');
  const pluginWritten = writeIfChanged(plugin, renderPluginScript(node, PLUGIN_ENTRY), 0o755);
  const companions = linkCompanions(o.binDir, sources);
  const conflist = join(o.confDir, CONFLIST_NAME);
  return { plugin: { path: plugin, written: pluginWritten }, companions, conflist: { path: conflist, written: writeIfChanged(conflist, renderConflist(o), 0o644) } };
}
