// The node's WireGuard private key, <state-dir>/wireguard.key: one line of
// base64 as `wg genkey` writes it (so `wg pubkey < wireguard.key` prints the
// node's public key), created when the node first encrypts, with mode 0600 (never briefly
// readable: the file is created with that mode, written, flushed, then
// renamed into place) and kept across restarts. A file that group or others
// may access, or that another user owns, is refused, as ssh refuses such a
// key: it may have been read.

import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { formatKey, generateKeyPair, parseKey } from '../wireguard/keys.js';
import { writeFileAtomic } from './atomic_write.js';

export const KEY_FILE = 'wireguard.key';

export function keyFilePath(stateDir: string): string {
  return join(stateDir, KEY_FILE);
}

function keyError(path: string, why: string): WeftError {
  return new WeftError('WEFT_KEY_FILE', `WireGuard key file ${path}: ${why}`, { path });
}

/**
 * Writes a new key as the node's, replacing any other (mode 0600,
 * atomically), and returns it. WEFT_STATE_WRITE naming the path when it
 * cannot be written (a full disk: worth retrying, unlike an unsafe file).
 */
export function writeNewKey(stateDir: string): Uint8Array {
  const path = keyFilePath(stateDir);
  const { privateKey } = generateKeyPair();
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path, `${formatKey(privateKey)}\n`, 0o600);
  } catch (err) {
    throw new WeftError('WEFT_STATE_WRITE', `cannot write the WireGuard key file ${path}: ${(err as Error).message}`, { path });
  }
  return privateKey;
}

/**
 * The node's private key from the key file; undefined when there is none.
 * WEFT_KEY_FILE naming the path when the file is not a regular file, is
 * open to group or others, is another user's, or does not hold a key.
 */
export function loadKey(stateDir: string): Uint8Array | undefined {
  const path = keyFilePath(stateDir);
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw keyError(path, (err as Error).message);
  }
  if (!st.isFile()) throw keyError(path, 'is not a regular file (a symlink is refused too)');
  if ((st.mode & 0o077) !== 0) throw keyError(path, `has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: group and others must have no access to a private key (chmod 600 it, or remove it and weftd makes a new one)`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw keyError(path, `is owned by uid ${st.uid}, not by weftd's uid ${uid}`);
  const key = parseKey(readFileSync(path, 'utf8').trim());
  if (!key) throw keyError(path, 'does not hold a key: one line of base64 of 32 bytes, as wg genkey writes');
  return key;
}
