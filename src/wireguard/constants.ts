// WireGuard's numbers, as the whitepaper and wireguard-go fix them
// (specification: changing one breaks interoperability), and the few that
// are weft's to choose (implementation), kept apart.

// ---- Specification: the wire

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
/** type, receiver index, counter. */
export const TRANSPORT_HEADER_SIZE = 16;
export const AEAD_TAG_SIZE = 16;
/** A transport message with an empty payload: the smallest valid transport message. */
export const KEEPALIVE_SIZE = TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;
/** Plaintext is zero-padded to a multiple of this (never past the MTU). */
export const PADDING_MULTIPLE = 16;
/** Outer IPv4 (20) + UDP (8) + transport header (16) + tag (16), without padding. */
export const WG_OVERHEAD = 20 + 8 + TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE;

export const KEY_SIZE = 32;
export const MAC_SIZE = 16;
export const TAI64N_SIZE = 12;
export const COOKIE_NONCE_SIZE = 24;

/** Offsets of the initiation message. */
export const INIT_SENDER = 4;
export const INIT_EPHEMERAL = 8;
export const INIT_STATIC = 40;
export const INIT_TIMESTAMP = 88;
export const INIT_MAC1 = 116;
export const INIT_MAC2 = 132;
/** Offsets of the response message. */
export const RESP_SENDER = 4;
export const RESP_RECEIVER = 8;
export const RESP_EPHEMERAL = 12;
export const RESP_EMPTY = 44;
export const RESP_MAC1 = 60;
export const RESP_MAC2 = 76;
/** Offsets of the cookie reply. */
export const COOKIE_RECEIVER = 4;
export const COOKIE_NONCE = 8;
export const COOKIE_ENCRYPTED = 32;
/** Offsets of the transport message. */
export const TRANSPORT_RECEIVER = 4;
export const TRANSPORT_COUNTER = 8;

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

// ---- Specification: timers and limits (whitepaper p. 14, wireguard-go device/constants.go)

export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
export const REKEY_AFTER_TIME_MS = 120_000;
/** The initiator also rekeys on receive past Reject-After-Time - Keepalive-Timeout - Rekey-Timeout. */
export const REKEY_AFTER_TIME_RECEIVING_MS = 165_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
/** Each retransmission of an initiation waits REKEY_TIMEOUT plus up to this much jitter. */
export const REKEY_TIMEOUT_JITTER_MS = 334;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** A second initiation from one peer within this is refused (flood protection). */
export const INITIATION_MIN_INTERVAL_MS = 20;
/** Cookies: the responder's secret is renewed this often; an initiator uses a cookie this long. */
export const COOKIE_SECRET_MAX_AGE_MS = 120_000;
export const COOKIE_MAX_AGE_MS = 120_000;
/** Counters more than this far behind the highest seen are refused (RFC 6479 ring of 128 64-bit blocks). */
export const REPLAY_WINDOW_BLOCKS = 128;
export const REPLAY_WINDOW = (REPLAY_WINDOW_BLOCKS - 1) * 64;
/** Under load, handshake messages per second per source address, and the burst. */
export const HANDSHAKES_PER_SECOND = 20;
export const HANDSHAKE_BURST = 5;

// ---- Implementation (weft's choices)

/** Default UDP port of the WireGuard socket (the network config's wireguardPort). */
export const DEFAULT_WG_PORT = 51820;
/** How often the session timers are checked while any peer has state. */
export const TIMER_TICK_MS = 250;
/** Handshake messages waiting to be processed at or above which a node is under load (answers with cookies). */
export const UNDER_LOAD_QUEUE = 128;
/** Handshake messages in one second at or above which a node is under load too (a dataplane that takes them as they come has no queue to measure). */
export const UNDER_LOAD_PER_SECOND = 512;
/** A node stays under load this long after the queue last reached UNDER_LOAD_QUEUE. */
export const UNDER_LOAD_HOLD_MS = 1_000;
/** Packets (or TSO super-packets) held per peer while its handshake completes; older ones are dropped first. */
export const STAGED_PER_PEER = 16;
