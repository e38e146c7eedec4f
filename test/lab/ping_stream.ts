// A ping stream between lab namespaces for as long as a fault lasts: `ping
// -i` in the background, stopped with SIGINT, its answers counted by
// sequence number, so a test can bound the loss exactly.

import type { Lab, LabProcess } from './lab.js';

export interface PingReport {
  /** Echo requests sent (ping's own count). */
  readonly sent: number;
  readonly answered: number;
  /** Sequence numbers below the last answered one that never got an answer: the loss. */
  readonly lost: readonly number[];
  /** Requests after the last answered one, still in flight when the stream stopped. */
  readonly inFlight: number;
}

export interface PingStream {
  /** SIGINT, then the counts; rejects if ping does not exit within 5 s or printed no summary. */
  stop(): Promise<PingReport>;
}

/** The longest a stream may run: a forgotten one ends by itself (the lab's teardown stops it sooner). */
const MAX_STREAM_S = 600;

/** Pings `toIp` from `fromNs` every `intervalMs` (at least 10 ms: ping's floor for root is 2 ms, and this is a probe, not a load) until stop(). */
export function startPingStream(lab: Lab, fromNs: string, toIp: string, intervalMs = 50): PingStream {
  if (!Number.isInteger(intervalMs) || intervalMs < 10) throw new Error(`ping stream ${fromNs} -> ${toIp}: interval must be an integer >= 10 ms, got ${intervalMs}`);
  const p: LabProcess = lab.spawn(fromNs, ['ping', '-n', '-W', '1', '-i', String(intervalMs / 1000), '-w', String(MAX_STREAM_S), toIp]);
  return {
    async stop(): Promise<PingReport> {
      p.kill('SIGINT');
      await p.exitWithin(5000);
      return parsePingOutput(p.log(), `${fromNs} -> ${toIp}`);
    },
  };
}

/** Counts a ping run's output (iputils: one "icmp_seq=N" line per answer, then "X packets transmitted, Y received"). */
export function parsePingOutput(out: string, what: string): PingReport {
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!summary) throw new Error(`ping stream ${what}: no summary in its output:\n${out.slice(-1000)}`);
  const answered = new Set<number>();
  for (const m of out.matchAll(/bytes from [\d.]+: icmp_seq=(\d+)/g)) answered.add(Number(m[1]));
  const last = Math.max(0, ...answered);
  const lost: number[] = [];
  for (let s = 1; s < last; s++) if (!answered.has(s)) lost.push(s);
  const sent = Number(summary[1]);
  return { sent, answered: answered.size, lost, inFlight: Math.max(0, sent - last) };
}
