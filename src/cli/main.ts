// What every weft command does with an error that ends it: a bad flag, an
// unsafe key file or an engine this node cannot run exits 2 with one line,
// anything else exits 1 with one line naming what failed.

import { errorMessage, isWeftError } from '../errors.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Displaced by a weftd on another machine under the same node name: restarting would only displace it back. */
export const EXIT_NODE_NAME_TAKEN = 3;

export function exitCodeFor(err: unknown): number {
  if (isWeftError(err, 'WEFT_BAD_FLAG') || isWeftError(err, 'WEFT_KEY_FILE') || isWeftError(err, 'WEFT_ENGINE_REFUSED')) return EXIT_USAGE;
  if (isWeftError(err, 'WEFT_NODE_NAME_TAKEN')) return EXIT_NODE_NAME_TAKEN;
  return EXIT_FAILURE;
}

/** Runs a command's main, printing `<command>: <reason>` on stderr and exiting with the right status on failure. */
export function runMain(command: string, main: () => Promise<void>): void {
  main().then(
    () => {
      process.exitCode ??= 0;
    },
    (err: unknown) => {
      process.stderr.write(`${command}: ${errorMessage(err)}\n`);
      process.exit(exitCodeFor(err));
    },
  );
}
