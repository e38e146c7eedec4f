// The logger: pino JSON lines on stdout. Field names of events are stable
// (`event`, `subnet`, `node`, `key`, `err`); docs/metrics.md lists them.

import pino, { type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, name = 'weftd'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 1, sync: true }));
}
