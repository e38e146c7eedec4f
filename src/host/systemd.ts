// systemd's notify protocol (sd_notify(3)): READY, STATUS, STOPPING and the
// watchdog keepalive, sent to $NOTIFY_SOCKET through the addon.

import { getSystemErrorName } from 'node:util';
import type { Logger } from 'pino';
import { loadAddon } from './addon.js';

export class SystemdNotifier {
  private failedOnce = false;

  private constructor(
    private readonly socket: string,
    /** Half the watchdog period systemd asked for, or undefined when it asked for none. */
    readonly watchdogIntervalMs: number | undefined,
    private readonly log: Logger,
  ) {}

  /** A notifier when systemd started us with Type=notify ($NOTIFY_SOCKET set), else undefined. */
  static fromEnv(env: NodeJS.ProcessEnv, log: Logger): SystemdNotifier | undefined {
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    const interval = Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : undefined;
    return new SystemdNotifier(socket, interval, log);
  }

  /** Sends `fields` (KEY=value lines); a failure is logged once, never thrown: systemd is optional. */
  notify(fields: Record<string, string | number>): void {
    const state = Object.entries(fields).map(([k, v]) => `${k}=${v}`).join('\n');
    const err = loadAddon().sdNotify(this.socket, state);
    if (err !== 0 && !this.failedOnce) {
      this.failedOnce = true;
      this.log.warn({ event: 'sd_notify_failed', socket: this.socket, err: getSystemErrorName(-err) }, 'cannot notify systemd');
    }
  }
}
