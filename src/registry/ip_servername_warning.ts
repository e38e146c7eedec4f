// One process-wide patch for the etcd client over TLS: drops Node's
// deprecation warning DEP0123, which grpc-js triggers for every endpoint
// given by IP address, and lets every other warning through.

/**
 * grpc-js hands an endpoint's host to TLS as the server name even when it is
 * an IP address, so Node prints deprecation DEP0123 on stderr; the server's
 * certificate is still checked against the IP (subjectAltName IP:...). That
 * one warning is dropped; every other goes through.
 */
let ipServernameWarningMuted = false;
export function muteIpServernameWarning(): void {
  if (ipServernameWarningMuted) return;
  ipServernameWarningMuted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [, type, code] = args;
    if (code === 'DEP0123' || (typeof type === 'object' && type !== null && (type as { code?: unknown }).code === 'DEP0123')) return;
    emit(...args);
  }) as typeof process.emitWarning;
}
