// Loads the production addon (native/build/Release/weft.node) and types what it exports;
// the test-only entry points are in the test addon (test/harness/test_addon.ts).

import { createRequire } from 'node:module';
import { WeftError } from '../errors.js';
import type { RouteArrays } from '../routes/route_table.js';
import { treePath } from '../tree.js';

/** Flag bits of openTun(). */
export const TUN_MULTI_QUEUE = 1;
export const TUN_VNET_HDR = 2;

/**
 * Called once per batch: packets 0..count-1 are in the reader's slab at
 * i * slotSize, their lengths in lengths[i]; both are borrowed until the
 * call returns. errno is 0, or the errno of the read error that ended the
 * batch (the count packets before it are valid). `last` is true on the
 * final call after the fd failed (e.g. the device is gone): the reader has
 * stopped itself. A throw becomes an uncaught exception.
 */
export type TunReaderCallback = (count: number, errno: number, last: boolean) => void;

/** Batch reader over a non-blocking fd, driven by Node's event loop. Does not own the fd. */
export interface TunReader {
  /** Starts polling. Idempotent; throws after stop(). A running reader keeps the process alive. */
  start(): void;
  /** Idempotent. No callback runs after it returns, even when called from inside one. */
  stop(): void;
}

export interface TunReaderConstructor {
  /**
   * Throws TypeError for wrong argument types, RangeError when slotSize < 1,
   * lengths is empty, or slab.length < lengths.length * slotSize. slab and
   * lengths must not be detached/transferred while the reader lives.
   */
  new (fd: number, slab: Buffer, slotSize: number, lengths: Uint32Array, onBatch: TunReaderCallback): TunReader;
}

/** A route table as the native engine takes it: RouteTable.arrays(). */
export type NativeRoutes = RouteArrays;

/** A table's WireGuard part, beside its routes. */
export interface NativeWireguard {
  /** HASH("mac1----" || this node's public key): what handshake messages' mac1 is checked with. */
  mac1Key: Uint8Array;
  /** Transport padding never goes past this (the TUN's MTU). */
  padLimit: number;
  /** Per route-table peer: its next, current and previous keypair's local index (0: none), installed with engineWgInstall. */
  slots: Uint32Array;
}

/** Bytes of each handshake message engineWgTake writes: [source u32 LE][length u16 LE][148 bytes]. */
export const WG_TAKE_ENTRY = 4 + 2 + 148;
/** Numbers per keypair engineWgActivity writes. */
export const WG_ACTIVITY_ROW = 7;

export interface NativeEngineOptions {
  /** One fd per TUN queue, borrowed by the engine until engineStop() returns. */
  tunFds: number[];
  /** The fds were opened with TUN_VNET_HDR: take TSO super-packets, write GSO ones. */
  vnetHdr: boolean;
  udpGso: boolean;
  udpGro: boolean;
  bindIp: number;
  /** The underlay interface the sending sockets are bound to; '' for none. */
  bindDevice: string;
  port: number;
  vni: number;
  selfBase: number;
  selfLen: number;
  tunAddr: number;
  /** tunFds.length blocks of COUNTER_NAMES.length slots; written by the workers, read by JS. */
  counters: BigUint64Array;
  /** Called on JS's thread (no arguments) when handshake messages or session requests wait for engineWgTake; at most once until it is called. */
  onWireguard?: () => void;
}

/** Opaque handle of a running native engine. */
export type NativeEngineHandle = { readonly __nativeEngine: unique symbol };

export interface WeftAddon {
  /**
   * Opens /dev/net/tun and attaches to (creating if needed) the L3 TUN device
   * `name` ('' lets the kernel name it), non-blocking, without packet info.
   * flags: TUN_MULTI_QUEUE | TUN_VNET_HDR. The caller owns and closes fd.
   * Throws an Error whose code is the errno name ('EPERM', 'EBUSY', ...) and
   * whose message reads `open TUN "<name>": <strerror>`.
   */
  openTun(name: string, flags: number): { fd: number; name: string };
  /** Sends one systemd notification datagram to `socketPath` ('@' = abstract): 0, or the errno. */
  sdNotify(socketPath: string, state: string): number;
  /** flock(fd, LOCK_EX | LOCK_NB): 0 when held (until fd closes or the process dies), else the errno (EWOULDBLOCK: held elsewhere). */
  lockFile(fd: number): number;
  /**
   * One netlink conversation (native/netlink.h): `requests` (whole messages,
   * each asking for an ack or a dump) go to the kernel on a fresh socket of
   * `protocol`; returns the reply messages back to back once every request
   * is answered. Throws an Error whose code is the errno name when the
   * socket fails (ETIMEDOUT when the kernel does not answer); a refused
   * request is an NLMSG_ERROR among the replies.
   */
  netlinkTransact(protocol: number, requests: Buffer): Buffer;
  /** One write(): bytes written, or -errno. Throws only for bad arguments. */
  writePacket(fd: number, buf: Buffer, offset: number, length: number): number;
  TunReader: TunReaderConstructor;
  readonly TUN_MULTI_QUEUE: typeof TUN_MULTI_QUEUE;
  readonly TUN_VNET_HDR: typeof TUN_VNET_HDR;

  /** Counter names in the native layout; equal to src/dataplane/counters.ts COUNTER_NAMES. */
  readonly COUNTER_NAMES: readonly string[];
  /**
   * Opens the engine's sockets, sets the TUN offloads and starts one worker
   * thread per fd. Throws an Error with an errno code naming the step that failed.
   */
  createEngine(options: NativeEngineOptions): NativeEngineHandle;
  /** Swaps a whole route table (with its WireGuard sessions, once encryption is on) in; the workers use it from their next batch. */
  engineSetRoutes(engine: NativeEngineHandle, routes: NativeRoutes, wireguard?: NativeWireguard): void;
  /** Stops and joins the workers; idempotent. The fds are the caller's again. */
  engineStop(engine: NativeEngineHandle): void;
  /** The offloads in use after probing the kernel, and the workers still running. */
  engineInfo(engine: NativeEngineHandle): { udpGso: boolean; udpGro: boolean; workersRunning: number; retiredTables: number; boundToDevice: boolean };
  /** Opens the WireGuard port in every worker (once). Throws an Error with an errno code naming the step. */
  engineWgEnable(engine: NativeEngineHandle, port: number): void;
  /** Installs a session's keys (32 bytes each), from a handshake completed; a table lists it by localIndex. */
  engineWgInstall(engine: NativeEngineHandle, localIndex: number, remoteIndex: number, sendKey: Uint8Array, recvKey: Uint8Array, initiator: boolean, peerIp: number, peerPort: number): void;
  /** Forgets a keypair; it goes with the last table that lists it. */
  engineWgRetire(engine: NativeEngineHandle, localIndex: number): void;
  /** Sends a handshake message from the WireGuard port: 0, or the errno. */
  engineWgSend(engine: NativeEngineHandle, ip: number, port: number, message: Uint8Array): number;
  /** Seals and sends a keepalive on a keypair: 0, or the errno (ENOENT: not installed). */
  engineWgKeepalive(engine: NativeEngineHandle, localIndex: number): number;
  /** Takes the pre-checked handshake messages (WG_TAKE_ENTRY bytes each, as many as `out` holds, at most 256) and the underlay addresses of peers a packet found no session for. */
  engineWgTake(engine: NativeEngineHandle, out: Buffer, want: Uint32Array): { messages: number; wants: number };
  /** Per installed keypair WG_ACTIVITY_ROW numbers: local index, ms since data sent, data received, anything sent, anything received (-1: never), confirmed (0/1), send counter; how many rows. */
  engineWgActivity(engine: NativeEngineHandle, out: Float64Array): number;
}

const ADDON_PATH = treePath('native/build/Release/weft.node');

let addon: WeftAddon | undefined;

/** The addon, loaded once. Throws WeftError WEFT_ADDON_MISSING when it is not built or does not load. */
export function loadAddon(): WeftAddon {
  if (addon !== undefined) return addon;
  const path = ADDON_PATH;
  try {
    addon = createRequire(import.meta.url)(path) as WeftAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new WeftError(
      'WEFT_ADDON_MISSING',
      `cannot load the native addon ${path}: ${reason}; run \`npm run build:native\``,
      { path },
      { cause: err },
    );
  }
  return addon;
}
