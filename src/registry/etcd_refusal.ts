// Why etcd refused weft, in words an operator can act on: TLS trust, client
// certificates, user and password, permissions. Pure: the etcd registry
// asks it about each failure to tell a refusal from an outage.

/** What the diagnosis needs to know of the connection settings. */
export interface RefusalContext {
  readonly prefix: string;
  readonly credentials?: { readonly rootCertificate?: Buffer; readonly certChain?: Buffer };
  readonly auth?: { readonly username: string };
}

/**
 * The cause inside a gRPC connection failure ("14 UNAVAILABLE: No connection
 * established. Last error: Error: <cause>. Resolution note: ..."), or the
 * whole message when it is not one.
 */
export function connectionCause(message: string): string {
  return /Last error: (?:Error: )?([\s\S]*?)(?:\. Resolution note:|$)/.exec(message)?.[1] ?? message;
}

/**
 * Why etcd refused us, in words an operator can act on, or undefined when
 * `message` (an etcd3/gRPC error's) is no refusal but an outage worth retrying.
 */
export function refusalReason(message: string, opts: RefusalContext): string | undefined {
  const last = connectionCause(message);
  const raw = (/SSL routines:[^:]*:([^:]+)/.exec(last)?.[1] ?? last).trim();
  const tls = (why: string): string => `TLS handshake failed: ${why} (${raw})`;
  if (/unable to verify the first certificate|unable to get (local )?issuer certificate|self[- ]signed certificate|certificate signature failure/i.test(last)) {
    return tls(`certificate signed by unknown authority: no CA in ${opts.credentials?.rootCertificate ? '--etcd-cafile' : 'the system store (give --etcd-cafile)'} signed the server's certificate`);
  }
  if (/Hostname\/IP does not match|altnames/i.test(last)) return tls("the server's certificate does not name this endpoint's host");
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied)/i.test(last)) {
    return tls(
      opts.credentials?.certChain
        ? 'etcd rejected the client certificate (--etcd-certfile): is it signed by a CA in etcd\'s --trusted-ca-file, and still valid?'
        : 'etcd requires a client certificate: give --etcd-certfile and --etcd-keyfile',
    );
  }
  if (/certificate has expired|certificate is not yet valid/i.test(last)) return tls("the server's certificate is expired or not yet valid");
  if (/wrong version number|packet length too long|http request/i.test(last)) return tls('the endpoint does not speak TLS (use http://?)');
  const user = opts.auth ? `user "${opts.auth.username}"` : 'no user';
  if (/authentication failed, invalid user ID or password/.test(message)) return `authentication failed: invalid user name or password (${user})`;
  if (/etcdserver: user name is empty/.test(message)) return 'authentication failed: etcd has auth enabled; give --etcd-username and a password (WEFT_ETCD_PASSWORD)';
  if (/etcdserver: authentication is not enabled/.test(message)) return 'authentication failed: etcd has auth disabled; drop --etcd-username';
  if (/etcdserver: permission denied/.test(message)) return `permission denied: ${user} needs readwrite on the key prefix ${opts.prefix}/`;
  return undefined;
}
