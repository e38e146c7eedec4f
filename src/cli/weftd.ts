#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1 --jitless --no-expose-wasm
// weftd: the per-node daemon. Parses flags, wires the real seams (etcd, kernel, systemd), runs the Daemon, maps signals to its one shutdown path.
// The line above is the bin's (dist/weftd.cjs, bundled from this file), so every way of starting it
// (npx weftd, the package's /usr/bin/weftd, the unit) runs Node as a small long-running agent: a 1 MB
// young generation, one V8 background thread, and no JIT, as the native engine's JavaScript is
// control plane only (docs/install.md); no WebAssembly, which --jitless turns off anyway (said
// here, Node does not warn that it did). For --engine js, which runs every packet in JavaScript,
// start it as `node dist/weftd.cjs` without these flags (weftd warns when it finds --jitless).

import { systemClock } from '../clock.js';
import { Daemon } from '../daemon/daemon.js';
import { kernelDataplane, kernelHost } from '../daemon/kernel_seams.js';
import { SystemdNotifier } from '../host/systemd.js';
import { createLogger } from '../log.js';
import { EtcdRegistry } from '../registry/etcd_registry.js';
import { VERSION } from '../version.js';
import { helpText } from './flags.js';
import { runMain } from './main.js';
import { WEFTD_FLAGS, parseDaemonArgs } from './weftd_flags.js';

runMain('weftd', async () => {
  const cmd = parseDaemonArgs(process.argv.slice(2), process.env);
  if (cmd.kind === 'help') {
    process.stdout.write(helpText('Usage: weftd [flags]\n\nLeases a pod subnet in etcd and forwards pod traffic between nodes over VXLAN-GPE.', WEFTD_FLAGS));
    return;
  }
  if (cmd.kind === 'version') {
    process.stdout.write(`weftd ${VERSION}\n`);
    return;
  }
  const log = createLogger(cmd.options.logLevel);
  if (cmd.options.engine === 'js' && process.execArgv.includes('--jitless')) {
    // The unit runs Node --jitless for the native engine, whose JavaScript is control plane only.
    log.warn({ event: 'js_engine_jitless' }, 'the js engine runs every packet in JavaScript, and Node runs --jitless: drop --jitless from the unit\'s ExecStart for --engine js');
  }
  // The real seams, wired here only.
  const registry = new EtcdRegistry({ ...cmd.etcd, clock: systemClock });
  const daemon = new Daemon(cmd.options, log, {
    registry,
    clock: systemClock,
    host: kernelHost,
    dataplane: kernelDataplane(cmd.options, log),
    notifier: SystemdNotifier.fromEnv(process.env, log),
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => daemon.stop(sig));
  // SIGUSR1 (weftctl rotate-key): a new WireGuard key, published in the lease.
  process.on('SIGUSR1', () => void daemon.rotateKey().catch((err: Error) => log.error({ event: 'wireguard_key_rotation_failed', err: err.message }, `key rotation failed: ${err.message}`)));
  // SIGHUP is ignored: every setting is read at start (encryption is followed live); restart to change one.
  process.on('SIGHUP', () => log.info({ event: 'sighup_ignored' }, 'SIGHUP ignored; restart weftd to apply new settings'));
  try {
    await daemon.run();
  } finally {
    registry.close();
  }
  // Teardown is done; an etcd that stopped answering can leave gRPC calls
  // that keep the loop alive until it answers. Exit once the logs flushed.
  setTimeout(() => process.exit(), 1000).unref();
});
