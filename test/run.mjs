#!/usr/bin/env node
// The test command (npm test): builds what the tests run (weftd, the two
// addons if either is missing or older than a native source), runs every vitest tier, and, when run as root, fails if any
// test skipped: root is where nothing may skip.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function step(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** Whether an addon is missing or older than a native source (a checkout that changed native/ since the last build). */
function addonsStale() {
  const built = ['weft.node', 'weft_test.node'].map((f) => join(root, 'native/build/Release', f));
  if (!built.every((f) => existsSync(f))) return true;
  const oldest = Math.min(...built.map((f) => statSync(f).mtimeMs));
  return readdirSync(join(root, 'native')).some((f) => /\.(cc|h|gyp)$/.test(f) && statSync(join(root, 'native', f)).mtimeMs > oldest);
}

if (addonsStale()) step(npm, ['run', '--silent', 'build:native']);
step(npm, ['run', '--silent', 'build:ts']);

const out = mkdtempSync(join(tmpdir(), 'weft-vitest-'));
const report = join(out, 'report.json');
const vitest = spawnSync(
  process.execPath,
  [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/vitest.config.ts', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
);
let code = vitest.status ?? 1;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  const skipped = r.testResults.flatMap((f) => f.assertionResults.filter((a) => a.status !== 'passed' && a.status !== 'failed').map((a) => `${f.name.replace(root, '')}: ${a.fullName}`));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped.length} skipped`);
  if (skipped.length > 0 && process.getuid?.() === 0) {
    console.error(`running as root, yet ${skipped.length} test(s) skipped:\n  ${skipped.join('\n  ')}`);
    code = code || 1;
  }
} catch (err) {
  console.error(`cannot read the vitest report: ${err.message}`);
  code = code || 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
process.exit(code);
