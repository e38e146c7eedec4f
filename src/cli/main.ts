// What every weft command does with an error that ends it: a bad flag exits
// 2 with one line, anything else exits 1 with one line naming what failed.

import { errorMessage, isWeftError } from '../errors.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function exitCodeFor(err: unknown): number {
  return isWeftError(err, 'WEFT_BAD_FLAG') ? EXIT_USAGE : EXIT_FAILURE;
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
