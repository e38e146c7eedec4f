// The shipped unit file: systemd's own checker accepts it, and it keeps the
// promises docs/install.md makes (notify, watchdog, CAP_NET_ADMIN only, no
// option that would kill V8 or hide the TUN). The unit as installed, with
// its man page, is verified by test/e2e/package.test.ts.

import { EXIT_NODE_NAME_TAKEN, EXIT_USAGE } from '../../src/cli/main.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WEFTD } from '../lab/cluster.js';

const run = promisify(execFile);
const UNIT = new URL('../../systemd/weftd.service', import.meta.url).pathname;

function settings(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv) m.set(kv[1]!, [...(m.get(kv[1]!) ?? []), kv[2]!]);
  }
  return m;
}

describe('systemd/weftd.service', () => {
  it('passes systemd-analyze verify, run from this tree (no package installed)', async () => {
    // The unit runs the package's /usr/bin/weftd; here the tree's bin stands in for it.
    const dir = mkdtempSync(join(tmpdir(), 'weft-unit-'));
    try {
      const unit = join(dir, 'weftd.service');
      writeFileSync(unit, readFileSync(UNIT, 'utf8').replace(/^ExecStart=\/usr\/bin\/weftd$/m, `ExecStart=${WEFTD}`));
      const r = await run('systemd-analyze', ['verify', '--man=no', unit], { timeout: 30_000 });
      expect(r.stderr.split('\n').filter((l) => l.includes('weftd.service'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the packaged weftd, whose bin carries the agent\'s Node flags', () => {
    expect(settings().get('ExecStart')).toEqual(['/usr/bin/weftd']);
    expect(readFileSync(WEFTD, 'utf8').split('\n')[0]).toMatch(/^#!\/usr\/bin\/env -S node .*--jitless/);
  });

  it('asks for notify and a watchdog, CAP_NET_ADMIN only, and keeps V8 and the TUN usable', () => {
    const s = settings();
    expect(s.get('Type')).toEqual(['notify']);
    expect(Number(s.get('WatchdogSec')?.[0])).toBeGreaterThan(0);
    expect(s.get('CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN']);
    expect(s.get('AmbientCapabilities')).toEqual(['CAP_NET_ADMIN']);
    expect(s.get('DeviceAllow')).toEqual(['/dev/net/tun rw']);
    expect(s.get('EnvironmentFile')).toEqual(['/etc/weft/weftd.env']);
    expect(s.get('Restart')).toEqual(['on-failure']);
    // Bad flags (2) and a node name another machine took over (3) are not restarted: see src/cli/main.ts.
    expect(s.get('RestartPreventExitStatus')).toEqual([`${EXIT_USAGE} ${EXIT_NODE_NAME_TAKEN}`]);
    for (const forbidden of ['MemoryDenyWriteExecute', 'PrivateDevices', 'PrivateNetwork']) expect(s.has(forbidden), forbidden).toBe(false);
    // uid 0 with a writable /proc/sys could undo the capability drop; weftd needs no sysctl write (test/e2e/service.test.ts).
    expect(s.get('ProtectKernelTunables')).toEqual(['yes']);
    for (const wanted of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'NoNewPrivileges', 'ReadWritePaths']) expect(s.has(wanted), wanted).toBe(true);
  });
});
