// The plugin's state: one file per attachment (container ID, interface) under
// <dataDir>/<network>/, written atomically before and after the delegated ADD,
// so DEL replays exactly the config ADD used and GC knows what exists.

import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../host/atomic_write.js';
import { join } from 'node:path';
import type { DelegateConfig } from './delegate.js';
import { type Attachment, IFNAME_RE, NAME_RE, type WeftNetConf } from './netconf.js';
import { CniCode, CniError } from './spec.js';

export interface AttachmentState extends Attachment {
  readonly netns: string;
  /** The node subnet ADD attached the pod in, e.g. 198.19.3.0/24. */
  readonly subnet: string;
  /** The exact config the delegate was given. */
  readonly delegate: DelegateConfig;
  /** The addresses ADD returned (CIDRs); empty until the delegate answered. */
  readonly ips: readonly string[];
}

/** Checks the spec's rules for the two IDs (they become a file name); a violation is code 4. */
export function checkAttachment(a: Attachment): Attachment {
  if (!NAME_RE.test(a.containerId)) throw new CniError(CniCode.BadEnvironment, `CNI_CONTAINERID "${a.containerId}" must be letters, digits, "_", "." and "-"`);
  if (!IFNAME_RE.test(a.ifname) || a.ifname === '.' || a.ifname === '..') {
    throw new CniError(CniCode.BadEnvironment, `CNI_IFNAME "${a.ifname}" must be an interface name of 1-15 characters without "/", ":" or spaces`);
  }
  return a;
}

function dirOf(conf: WeftNetConf): string {
  return join(conf.dataDir, conf.name);
}

/** Neither ID may contain ":", so the name splits back unambiguously. */
function fileOf(conf: WeftNetConf, a: Attachment): string {
  return join(dirOf(conf), `${a.containerId}:${a.ifname}.json`);
}

function ioError(what: string, err: unknown): CniError {
  return new CniError(CniCode.Io, `${what}: ${(err as Error).message}`);
}

export function saveAttachment(conf: WeftNetConf, s: AttachmentState): void {
  const file = fileOf(conf, s);
  try {
    mkdirSync(dirOf(conf), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, `${JSON.stringify(s)}\n`, 0o600);
  } catch (err) {
    throw ioError(`cannot write plugin state ${file}`, err);
  }
}

/** The stored state, or undefined when there is none or it cannot be read back (then DEL falls back). */
export function loadAttachment(conf: WeftNetConf, a: Attachment): AttachmentState | undefined {
  const file = fileOf(conf, a);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`cannot read plugin state ${file}`, err);
  }
  try {
    const s = JSON.parse(text) as AttachmentState;
    if (typeof s.delegate !== 'object' || s.delegate === null || !Array.isArray(s.ips)) throw new Error('fields missing');
    return s;
  } catch (err) {
    process.stderr.write(`weft: ignoring unreadable plugin state ${file}: ${(err as Error).message}\n`);
    return undefined;
  }
}

export function removeAttachment(conf: WeftNetConf, a: Attachment): void {
  try {
    rmSync(fileOf(conf, a), { force: true });
  } catch (err) {
    throw ioError(`cannot remove plugin state ${fileOf(conf, a)}`, err);
  }
}

/** Every attachment with a state file, read back where possible (state undefined when unreadable). */
export function listAttachments(conf: WeftNetConf): { attachment: Attachment; state: AttachmentState | undefined }[] {
  let names: string[];
  try {
    names = readdirSync(dirOf(conf));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(`cannot list plugin state in ${dirOf(conf)}`, err);
  }
  return names.flatMap((n) => {
    const m = /^([^:]+):([^:]+)\.json$/.exec(n);
    if (!m) return [];
    const attachment = { containerId: m[1]!, ifname: m[2]! };
    return [{ attachment, state: loadAttachment(conf, attachment) }];
  });
}
