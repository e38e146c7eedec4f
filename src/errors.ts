// weft's typed errors: one stable code per failure mode, carrying its operands.

export type WeftErrorCode =
  | 'WEFT_BAD_FLAG'
  | 'WEFT_BAD_CIDR'
  | 'WEFT_CONFIG_MISSING'
  | 'WEFT_CONFIG_INVALID'
  | 'WEFT_CONFIG_CONFLICT'
  | 'WEFT_VALUE_INVALID'
  | 'WEFT_NETWORK_FULL'
  | 'WEFT_LEASE_CONFLICT'
  | 'WEFT_LEASE_LOST'
  | 'WEFT_ETCD_UNAVAILABLE'
  /** etcd answers but refuses us: TLS trust or client certificate, user/password, permissions. Not retried at start. */
  | 'WEFT_ETCD_AUTH'
  /** A lease watch ended (its start revision compacted, a reconnect, a server cancel): re-list and watch again. */
  | 'WEFT_WATCH_BROKEN'
  | 'WEFT_HOST_SETUP'
  /** A file weftd keeps in its state directory could not be written: details name the path and the operation. */
  | 'WEFT_STATE_WRITE'
  | 'WEFT_TUN_OPEN'
  | 'WEFT_ADDON_MISSING'
  | 'WEFT_NO_PUBLIC_IP'
  /** The engine asked for cannot run on this node (kernel: no VXLAN-GPE, its port taken, encryption on): exit 2, which the unit does not restart. */
  | 'WEFT_ENGINE_REFUSED'
  /** Another weftd holds this node's instance lock. */
  | 'WEFT_ALREADY_RUNNING'
  /** A command for the local weftd found none running (its instance lock is free). */
  | 'WEFT_NOT_RUNNING'
  /** A weftd on another machine took over this node name: two machines share it. Exit 3, which the unit does not restart. */
  | 'WEFT_NODE_NAME_TAKEN'
  /** The WireGuard key file is unsafe (open to group or others, another user's) or holds no key. Exit 2: an operator must fix it. */
  | 'WEFT_KEY_FILE';

export class WeftError extends Error {
  readonly code: WeftErrorCode;
  /** The operands: which key, which flag, which peer. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: WeftErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
    this.details = details;
  }
}

export function isWeftError(err: unknown, code?: WeftErrorCode): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for logs and one-line CLI errors. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
