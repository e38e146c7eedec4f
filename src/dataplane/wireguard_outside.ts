// outside, on the WireGuard port: the checks of one datagram, the executable
// specification both engines follow (native/wg_outside.h: same checks, same
// order, same counters).
//
//   type and length (types 1-4, reserved bytes zero, exact sizes) ->
//   handshake message: the source is a node whose lease has a key -> mac1
//     made with our public key -> queued for the sessions (src/wireguard)
//   transport message: receiver index is a session of ours -> the source is
//     that session's node -> the session is younger than Reject-After-Time ->
//     the tag authenticates -> the counter is under Reject-After-Messages ->
//     and new to the replay window -> (empty: a keepalive) -> the inner
//     packet passes acceptInner from that node (the engine's call)

import { PEER_HAS_KEY } from '../constants.js';
import type { RouteTable } from '../routes/route_table.js';
import { mac1Valid } from '../wireguard/cookie.js';
import { KEEPALIVE_SIZE, MSG_COOKIE_REPLY, MSG_TRANSPORT, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS } from '../wireguard/constants.js';
import { MSG_MALFORMED, messageType } from '../wireguard/messages.js';
import type { Keypair } from '../wireguard/sessions.js';
import { openTransport, transportCounter, transportReceiver } from '../wireguard/transport.js';
import { C } from './counters.js';

/** Transport counters at or past this are refused; as a number it is exact to 2^53, which no counter reaches. */
const COUNTER_LIMIT = Number(REJECT_AFTER_MESSAGES);

/**
 * The type of the WireGuard datagram of `len` bytes at `off` from `srcIp`
 * (MSG_INITIATION ... MSG_TRANSPORT), or MSG_MALFORMED when it is dropped
 * (counted in `c`). A handshake message returned here came from a node with
 * a key and carries a valid mac1 for `ourMac1Key`.
 */
export function precheckWireguard(buf: Uint8Array, off: number, len: number, srcIp: number, table: RouteTable, ourMac1Key: Uint8Array, c: Float64Array): number {
  const type = messageType(buf, off, len);
  if (type === MSG_MALFORMED) {
    c[C.outside_drop_wg_malformed]!++;
    return MSG_MALFORMED;
  }
  if (type === MSG_TRANSPORT) return type;
  if (((table.flagsOfSender(srcIp) ?? 0) & PEER_HAS_KEY) === 0) {
    c[C.outside_drop_unknown_sender]!++;
    return MSG_MALFORMED;
  }
  if (type !== MSG_COOKIE_REPLY && !mac1Valid(buf.subarray(off, off + len), ourMac1Key)) {
    c[C.outside_drop_wg_mac1]!++;
    return MSG_MALFORMED;
  }
  return type;
}

/**
 * Opens the transport message of `len` bytes at `off` from `srcIp` (the
 * node of the keypair `keypairOf` finds by its receiver index): its padded
 * plaintext, or undefined when refused (counted in `c`). Only a message
 * that authenticated updates its keypair: the replay window, key
 * confirmation, and when anything (a keepalive too) and data last came.
 */
export function openWireguard(buf: Uint8Array, off: number, len: number, srcIp: number, keypairOf: (localIndex: number) => Keypair | undefined, now: number, c: Float64Array): Buffer | undefined {
  const kp = keypairOf(transportReceiver(buf, off));
  if (!kp) {
    c[C.outside_drop_wg_unknown_index]!++;
    return undefined;
  }
  if (kp.peer.ip !== srcIp) {
    c[C.outside_drop_unknown_sender]!++;
    return undefined;
  }
  if (now - kp.createdAt >= REJECT_AFTER_TIME_MS) {
    c[C.outside_drop_wg_expired]!++;
    return undefined;
  }
  const plain = openTransport(kp.recvKey, buf, off, len);
  if (!plain) {
    c[C.outside_drop_wg_auth]!++;
    return undefined;
  }
  const counter = transportCounter(buf, off);
  if (counter >= COUNTER_LIMIT) {
    c[C.outside_drop_wg_expired]!++;
    return undefined;
  }
  if (!kp.replay.accept(counter)) {
    c[C.outside_drop_wg_replay]!++;
    return undefined;
  }
  kp.confirmed = true;
  kp.lastReceived = now;
  if (len > KEEPALIVE_SIZE) kp.lastDataReceived = now;
  return plain;
}
