// The CNI contract as the weft plugin speaks it: versions, error codes, the
// error type, and the environment a runtime passes (CNI spec 1.0.0, plus GC
// and STATUS from 1.1.0).

export const CNI_VERSION = '1.1.0';
/** Versions whose config the plugin accepts; results are written in the config's version. */
export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** The spec's well-known error codes, and the plugin's own (100 and up). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  BadEnvironment: 4,
  Io: 5,
  Decode: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  StatusCannotAdd: 50,
  /** cni0 still carries the node's previous subnet while pods use it. */
  SubnetChanged: 100,
  /** CHECK: the pod's address is not in the node's current subnet. */
  AddressOutsideSubnet: 101,
  /** A delegated plugin (bridge, host-local) failed; its own code and message are in details. */
  DelegateFailed: 102,
} as const;

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

/** A failure as the runtime sees it: printed as JSON on stdout, non-zero exit. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details: string = '',
  ) {
    super(message);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): Record<string, unknown> {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** What the runtime said in the environment; which fields a verb needs is the verb's business. */
export interface CniEnv {
  readonly command: CniCommand;
  readonly containerId: string | undefined;
  readonly netns: string | undefined;
  readonly ifname: string | undefined;
  /** CNI_ARGS as pairs, e.g. K8S_POD_NAME. */
  readonly args: ReadonlyMap<string, string>;
  readonly path: readonly string[];
}

export function readCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND;
  if (!command) throw new CniError(CniCode.BadEnvironment, 'CNI_COMMAND is not set (expected one of ADD, DEL, CHECK, VERSION, GC, STATUS)');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(CniCode.BadEnvironment, `CNI_COMMAND "${command}" is not one of ${COMMANDS.join(', ')}`);
  }
  const args = new Map<string, string>();
  for (const pair of (env.CNI_ARGS ?? '').split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.BadEnvironment, `CNI_ARGS: "${pair}" is not KEY=VALUE`);
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return {
    command: command as CniCommand,
    containerId: env.CNI_CONTAINERID || undefined,
    netns: env.CNI_NETNS || undefined,
    ifname: env.CNI_IFNAME || undefined,
    args,
    path: (env.CNI_PATH ?? '').split(':').filter((d) => d !== ''),
  };
}

/** The named variable's value; a missing one is the spec's code 4, naming it. */
export function required(value: string | undefined, name: string, command: CniCommand): string {
  if (value === undefined) throw new CniError(CniCode.BadEnvironment, `${name} is not set (required for ${command})`);
  return value;
}

/** The VERSION answer. */
export function versionInfo(): { cniVersion: string; supportedVersions: readonly string[] } {
  return { cniVersion: CNI_VERSION, supportedVersions: SUPPORTED_VERSIONS };
}
