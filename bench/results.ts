// Where a benchmark's results go: bench/results/<kind>-<date>.json, written
// whole (a .tmp renamed into place), so a run cut short leaves no partial file.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RESULTS = fileURLToPath(new URL('./results', import.meta.url));

/**
 * Writes `body` as indented JSON to bench/results/<kind>-<stamp>Z.json, the
 * stamp `date` (an ISO time, `Date.toISOString()`'s) to the second with its
 * colons as dashes; the file's path.
 */
export function writeResult(kind: string, date: string, body: unknown): string {
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `${kind}-${date.slice(0, 19).replace(/:/g, '-')}Z.json`);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(body, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  return file;
}
