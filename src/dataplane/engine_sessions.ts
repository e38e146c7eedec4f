// An engine's WireGuard sessions (src/wireguard/sessions.ts), fed from its
// route tables: the peers that publish keys, which sessions each table peer
// has, and the handshake refusals and counts in the engines' counter layout;
// with what else both engines share about them. Both engines hold one; they
// differ only in their transport.

import { WeftError, errorMessage } from '../errors.js';
import { formatCidr } from '../net/ipv4.js';
import type { RouteTable } from '../routes/route_table.js';
import { type HandshakeRefusal, type SessionDataplane, type SessionPeer, WireguardSessions } from '../wireguard/sessions.js';
import { C, COUNTER_NAMES } from './counters.js';
import type { EngineConfig } from './engine.js';

/** Handshake messages the sessions take per turn of the event loop (the native addon's limit too), so forwarding goes on during a flood. */
export const HANDSHAKES_PER_TURN = 256;

/** The error of a WireGuard port the engine cannot open, naming it. */
export function wireguardPortError(port: number, err: unknown): WeftError {
  return new WeftError('WEFT_HOST_SETUP', `cannot open the WireGuard port ${port}: ${errorMessage(err)}`, { port });
}

/** Each handshake refusal's counter. */
const REFUSAL_COUNTER: Readonly<Record<HandshakeRefusal, number>> = {
  unknown_sender: C.outside_drop_unknown_sender,
  unknown_key: C.outside_drop_wg_unknown_key,
  auth: C.outside_drop_wg_auth,
  replay: C.outside_drop_wg_replay,
  unknown_index: C.outside_drop_wg_unknown_index,
  cookie: C.outside_drop_wg_cookie,
};

export class EngineSessions {
  readonly sessions: WireguardSessions;
  private readonly refusals = new Float64Array(COUNTER_NAMES.length);
  /** Each table peer's sessions, by peer index (undefined: it publishes no key). */
  private sessionOf: (SessionPeer | undefined)[] = [];

  constructor(cfg: EngineConfig, dataplane: SessionDataplane) {
    this.sessions = new WireguardSessions({ privateKey: cfg.wireguard.privateKey, clock: cfg.clock, dataplane, refused: (why) => this.refusals[REFUSAL_COUNTER[why]]!++ });
  }

  /** A new route table: the peers with keys, by their subnet (a peer keeps its sessions while its lease stands). */
  setTable(table: RouteTable): void {
    const keyed = this.sessions.setPeers(table.peers.flatMap((p) => (p.wgKey ? [{ id: formatCidr(p.subnet), node: p.node, key: p.wgKey, ip: p.ip, port: p.wgPort! }] : [])));
    let k = 0;
    this.sessionOf = table.peers.map((p) => (p.wgKey ? keyed[k++] : undefined));
  }

  /** The sessions of table peer `i`. */
  of(i: number): SessionPeer | undefined {
    return this.sessionOf[i];
  }

  /** Adds the handshake refusals and counts to `c` (an engine's counters, in COUNTER_NAMES order). */
  addTo(c: number[] | Float64Array): void {
    for (let i = 0; i < c.length; i++) c[i]! += this.refusals[i]!;
    c[C.wg_initiations_sent]! += this.sessions.stats.initiationsSent;
    c[C.wg_handshakes_completed]! += this.sessions.stats.handshakesCompleted;
  }
}
