// The weft plugin's network config (one plugin's object from the conflist,
// as the runtime passes it on stdin): parsed and checked before anything is
// touched, with defaults for every weft field.

import { isAbsolute } from 'node:path';
import { DEFAULT_SUBNET_FILE } from '../constants.js';
import { CniCode, CniError, SUPPORTED_VERSIONS } from './spec.js';

export const DEFAULT_BRIDGE = 'cni0';
export const DEFAULT_CNI_DATA_DIR = '/run/weft/cni';
export const DEFAULT_IPAM_DIR = '/run/weft/ipam';

export interface Attachment {
  readonly containerId: string;
  readonly ifname: string;
}

export interface WeftNetConf {
  readonly cniVersion: string;
  readonly name: string;
  /** The bridge pods attach to; its address is the subnet's gateway. */
  readonly bridge: string;
  readonly subnetFile: string;
  /** Plugin state: one file per attachment. */
  readonly dataDir: string;
  /** host-local's dataDir: its reservations live in <ipamDir>/<name>/. */
  readonly ipamDir: string;
  readonly prevResult: Record<string, unknown> | undefined;
  readonly runtimeConfig: Record<string, unknown>;
  /** GC: the attachments the runtime still holds (undefined when the key is absent). */
  readonly validAttachments: readonly Attachment[] | undefined;
}

/** An interface name (the bridge's, CNI_IFNAME): 1-15 bytes, no "/", ":" or spaces. */
export const IFNAME_RE = /^[^\s/:]{1,15}$/;
/** A network name or a container ID: letters, digits, "_", "." and "-" (both become file names). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function invalid(msg: string): CniError {
  return new CniError(CniCode.InvalidConfig, msg);
}

function optionalString(o: Record<string, unknown>, key: string, fallback: string): string {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || v === '') throw invalid(`config field "${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function optionalPath(o: Record<string, unknown>, key: string, fallback: string): string {
  const v = optionalString(o, key, fallback);
  if (!isAbsolute(v)) throw invalid(`config field "${key}" must be an absolute path (runtimes run plugins from any directory), got "${v}"`);
  return v;
}

function optionalObject(o: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`config field "${key}" must be an object`);
  return v as Record<string, unknown>;
}

function attachmentsOf(o: Record<string, unknown>): Attachment[] | undefined {
  const list = o['cni.dev/valid-attachments'] ?? o['cni.dev/attachments'];
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) throw invalid('"cni.dev/valid-attachments" must be a list of {containerID, ifname}');
  return list.map((a: unknown, i) => {
    const e = (a ?? {}) as Record<string, unknown>;
    if (typeof e.containerID !== 'string' || typeof e.ifname !== 'string' || e.containerID === '' || e.ifname === '') {
      throw invalid(`"cni.dev/valid-attachments"[${i}] needs string containerID and ifname, got ${JSON.stringify(a)}`);
    }
    return { containerId: e.containerID, ifname: e.ifname };
  });
}

/** Parses stdin. No input or bad JSON is the spec's code 6; a wrong field, 7; an unknown version, 1. */
export function parseNetConf(stdin: string): WeftNetConf {
  if (stdin.trim() === '') throw new CniError(CniCode.Decode, 'no network config on stdin (the runtime passes the plugin\'s config object as JSON)');
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.Decode, `network config on stdin is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CniError(CniCode.Decode, 'network config on stdin must be a JSON object');
  const o = raw as Record<string, unknown>;
  const cniVersion = o.cniVersion;
  if (typeof cniVersion !== 'string') throw invalid('config field "cniVersion" is missing (a string such as "1.0.0")');
  if (!SUPPORTED_VERSIONS.includes(cniVersion)) {
    throw new CniError(CniCode.IncompatibleVersion, `cniVersion "${cniVersion}" is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  const name = o.name;
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw invalid(`config field "name" must be a network name of letters, digits, "_", "." and "-", got ${JSON.stringify(name)}`);
  }
  const bridge = optionalString(o, 'bridge', DEFAULT_BRIDGE);
  if (!IFNAME_RE.test(bridge)) throw invalid(`config field "bridge" must be an interface name of at most 15 characters, got "${bridge}"`);
  return {
    cniVersion,
    name,
    bridge,
    subnetFile: optionalPath(o, 'subnetFile', DEFAULT_SUBNET_FILE),
    dataDir: optionalPath(o, 'dataDir', DEFAULT_CNI_DATA_DIR),
    ipamDir: optionalPath(o, 'ipamDir', DEFAULT_IPAM_DIR),
    prevResult: optionalObject(o, 'prevResult'),
    runtimeConfig: optionalObject(o, 'runtimeConfig') ?? {},
    validAttachments: attachmentsOf(o),
  };
}
