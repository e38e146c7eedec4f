// The etcd flags weftd and weftctl share, and their validation into an
// EtcdConnection: endpoints, prefix, and the TLS and password files' contents.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DEFAULT_ETCD_ENDPOINT, DEFAULT_ETCD_PREFIX } from '../constants.js';
import { errorMessage } from '../errors.js';
import { normalizePrefix } from '../registry/keys.js';
import { type FlagSpec, type FlagValues, badFlag, stringFlag } from './flags.js';

/** The etcd flags of weftd and weftctl. */
export const ETCD_FLAGS: readonly FlagSpec[] = [
  { name: 'etcd-endpoints', type: 'string', help: 'comma-separated etcd URLs', default: DEFAULT_ETCD_ENDPOINT },
  { name: 'etcd-prefix', type: 'string', help: 'key prefix, so clusters can share an etcd', default: DEFAULT_ETCD_PREFIX },
  { name: 'etcd-cafile', type: 'string', help: "PEM CA bundle that signed etcd's server certificate (https endpoints)", default: 'the system CAs' },
  { name: 'etcd-certfile', type: 'string', help: 'PEM client certificate for an etcd with --client-cert-auth; with --etcd-keyfile' },
  { name: 'etcd-keyfile', type: 'string', help: 'PEM private key (unencrypted) of --etcd-certfile' },
  { name: 'etcd-username', type: 'string', help: 'etcd user, for an etcd with auth enabled; needs a password' },
  { name: 'etcd-password', type: 'string', help: 'password of --etcd-username; prefer WEFT_ETCD_PASSWORD in the environment file (ps shows command lines)' },
  { name: 'etcd-password-file', type: 'string', help: 'file holding the password of --etcd-username (one line)' },
];

/** Everything needed to reach etcd: where, under which prefix, and how to prove who we are. */
export interface EtcdConnection {
  readonly endpoints: string[];
  readonly prefix: string;
  /** TLS material (https endpoints). No rootCertificate: the system CAs. */
  readonly credentials?: { readonly rootCertificate?: Buffer; readonly privateKey?: Buffer; readonly certChain?: Buffer };
  readonly auth?: { readonly username: string; readonly password: string };
}

/** Reads a file named by a flag; a missing or unreadable file is a bad flag naming it. */
function readFlagFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badFlag(flag, `cannot read "${path}"${code ? ` (${code})` : ''}`);
  }
}

function certificate(flag: string, path: string): Buffer {
  const pem = readFlagFile(flag, path);
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw badFlag(flag, `"${path}" is not a PEM certificate: ${errorMessage(err)}`);
  }
  return pem;
}

/**
 * Validates the etcd flags and reads the files they name: endpoints, prefix,
 * TLS (--etcd-cafile, --etcd-certfile with --etcd-keyfile: https endpoints
 * only; an https endpoint without --etcd-cafile trusts the system CAs) and
 * user/password auth (the password from WEFT_ETCD_PASSWORD, --etcd-password-file
 * or --etcd-password). Bad usage throws WEFT_BAD_FLAG naming the flag.
 */
export function etcdConnection(values: FlagValues): EtcdConnection {
  const endpoints = etcdEndpoints(values);
  const prefix = etcdPrefix(values);
  const https = endpoints.filter((e) => e.startsWith('https:')).length;
  if (https > 0 && https < endpoints.length) throw badFlag('etcd-endpoints', 'mixes http:// and https:// endpoints; use one scheme');

  const caFile = stringFlag(values, 'etcd-cafile');
  const certFile = stringFlag(values, 'etcd-certfile');
  const keyFile = stringFlag(values, 'etcd-keyfile');
  let credentials: EtcdConnection['credentials'];
  const tlsFlag = caFile !== undefined ? 'etcd-cafile' : certFile !== undefined ? 'etcd-certfile' : keyFile !== undefined ? 'etcd-keyfile' : undefined;
  if (tlsFlag !== undefined) {
    if (https === 0) throw badFlag(tlsFlag, `needs https:// etcd endpoints (--etcd-endpoints is ${endpoints.join(',')})`);
    if (certFile !== undefined && keyFile === undefined) throw badFlag('etcd-certfile', 'needs --etcd-keyfile');
    if (keyFile !== undefined && certFile === undefined) throw badFlag('etcd-keyfile', 'needs --etcd-certfile');
    const rootCertificate = caFile !== undefined ? certificate('etcd-cafile', caFile) : undefined;
    let client: { privateKey: Buffer; certChain: Buffer } | undefined;
    if (certFile !== undefined && keyFile !== undefined) {
      const certChain = certificate('etcd-certfile', certFile);
      const privateKey = readFlagFile('etcd-keyfile', keyFile);
      let key;
      try {
        key = createPrivateKey(privateKey);
      } catch (err) {
        throw badFlag('etcd-keyfile', `"${keyFile}" is not an unencrypted PEM private key: ${errorMessage(err)}`);
      }
      if (!new X509Certificate(certChain).checkPrivateKey(key)) throw badFlag('etcd-keyfile', `"${keyFile}" is not the key of the certificate in ${certFile}`);
      client = { privateKey, certChain };
    }
    credentials = { ...(rootCertificate ? { rootCertificate } : {}), ...client };
  }

  const username = stringFlag(values, 'etcd-username');
  const inline = stringFlag(values, 'etcd-password');
  const passwordFile = stringFlag(values, 'etcd-password-file');
  if (inline !== undefined && passwordFile !== undefined) throw badFlag('etcd-password-file', 'conflicts with --etcd-password (WEFT_ETCD_PASSWORD); give one');
  let password = inline;
  if (passwordFile !== undefined) {
    password = readFlagFile('etcd-password-file', passwordFile).toString('utf8').replace(/\r?\n$/, '');
    if (password === '') throw badFlag('etcd-password-file', `"${passwordFile}" is empty`);
  }
  if (username === '') throw badFlag('etcd-username', 'is empty');
  if (username !== undefined && password === undefined) {
    throw badFlag('etcd-username', 'needs a password: WEFT_ETCD_PASSWORD in the environment (preferred), --etcd-password-file or --etcd-password');
  }
  if (username === undefined && password !== undefined) throw badFlag(passwordFile !== undefined ? 'etcd-password-file' : 'etcd-password', 'needs --etcd-username');
  const auth = username !== undefined && password !== undefined ? { username, password } : undefined;

  return { endpoints, prefix, ...(credentials ? { credentials } : {}), ...(auth ? { auth } : {}) };
}

export function etcdEndpoints(values: FlagValues): string[] {
  const raw = stringFlag(values, 'etcd-endpoints') ?? DEFAULT_ETCD_ENDPOINT;
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const e of list) {
    let url: URL;
    try {
      url = new URL(e);
    } catch {
      throw badFlag('etcd-endpoints', `"${e}" is not a URL like http://127.0.0.1:2379`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badFlag('etcd-endpoints', `"${e}" must use http or https`);
    // Never echoed back: status, logs and errors print the endpoints.
    if (url.username || url.password) {
      throw badFlag('etcd-endpoints', `an endpoint carries credentials (${url.protocol}//***@${url.host}); give them with --etcd-username and --etcd-password-file instead`);
    }
  }
  if (list.length === 0) throw badFlag('etcd-endpoints', 'is empty');
  return list;
}

export function etcdPrefix(values: FlagValues): string {
  const p = stringFlag(values, 'etcd-prefix') ?? DEFAULT_ETCD_PREFIX;
  if (!/^[A-Za-z0-9/_.-]*$/.test(p)) throw badFlag('etcd-prefix', `"${p}" may hold only letters, digits and / _ . -`);
  return normalizePrefix(p);
}
