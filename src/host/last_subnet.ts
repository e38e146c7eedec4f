// The record of the last subnet this node held, <stateDir>/subnet, so a
// restart asks for the same one: one line, written atomically.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cidr, formatCidr, parseCidr } from '../net/ipv4.js';
import { writeFileAtomic } from './atomic_write.js';

export function lastSubnetPath(stateDir: string): string {
  return join(stateDir, 'subnet');
}

/** The subnet recorded, or undefined when there is no record; throws (naming the value) when the record does not parse. */
export async function readLastSubnet(stateDir: string): Promise<Cidr | undefined> {
  let text: string;
  try {
    text = await readFile(lastSubnetPath(stateDir), 'utf8');
  } catch {
    return undefined;
  }
  return parseCidr(text.trim());
}

/** Records `subnet`, creating the directory if need be; a reader never sees half a file. */
export async function writeLastSubnet(stateDir: string, subnet: Cidr): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  writeFileAtomic(lastSubnetPath(stateDir), `${formatCidr(subnet)}\n`, 0o644);
}
