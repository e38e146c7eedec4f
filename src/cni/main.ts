#!/usr/bin/env node
// weft's CNI plugin entry: the process a container runtime executes. Reads
// the environment and stdin, runs one verb, prints the result or the spec's
// error JSON on stdout. Imports nothing of the daemon (no etcd client,
// logger or protobuf), so a call costs little more than Node's own start.

import { readFileSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import { note, runCommand } from './commands.js';
import { parseNetConf } from './netconf.js';
import { CNI_VERSION, CniCode, CniError, readCniEnv, versionInfo } from './spec.js';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    throw new CniError(CniCode.Decode, `cannot read the network config from stdin: ${errorMessage(err)}`);
  }
}

function main(): void {
  let cniVersion = CNI_VERSION;
  let env;
  try {
    env = readCniEnv(process.env);
    if (env.command === 'VERSION') {
      process.stdout.write(`${JSON.stringify(versionInfo())}\n`);
      return;
    }
    const conf = parseNetConf(readStdin());
    cniVersion = conf.cniVersion;
    const out = runCommand(env, conf, process.env);
    if (out) process.stdout.write(`${JSON.stringify(out)}\n`);
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(999, `internal error: ${errorMessage(err)}`);
    process.stdout.write(`${JSON.stringify(e.toJSON(cniVersion))}\n`);
    if (env) note(env, `failed (code ${e.code}): ${e.message}`);
    else process.stderr.write(`weft: failed (code ${e.code}): ${e.message}\n`);
    process.exitCode = 1;
  }
}

main();
