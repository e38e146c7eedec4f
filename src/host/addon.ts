// Loads the native addon (native/build/Release/weft.node) and types what it exports.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';

/** Flag bits of openTun(). */
export const TUN_MULTI_QUEUE = 1;
export const TUN_VNET_HDR = 2;

/**
 * Called once per batch: packets 0..count-1 are in the reader's slab at
 * i * slotSize, their lengths in lengths[i]; both are borrowed until the
 * call returns. errno is 0, or the errno of the read error that ended the
 * batch (the count packets before it are valid); count 0 with an errno and
 * the reader stopped itself means the fd failed (e.g. the device is gone).
 * A throw becomes an uncaught exception.
 */
export type TunReaderCallback = (count: number, errno: number) => void;

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

export interface WeftAddon {
  /**
   * Opens /dev/net/tun and attaches to (creating if needed) the L3 TUN device
   * `name` ('' lets the kernel name it), non-blocking, without packet info.
   * flags: TUN_MULTI_QUEUE | TUN_VNET_HDR. The caller owns and closes fd.
   * Throws an Error whose code is the errno name ('EPERM', 'EBUSY', ...) and
   * whose message reads `open TUN "<name>": <strerror>`.
   */
  openTun(name: string, flags: number): { fd: number; name: string };
  /** One write(): bytes written, or -errno. Throws only for bad arguments. */
  writePacket(fd: number, buf: Buffer, offset: number, length: number): number;
  TunReader: TunReaderConstructor;
  readonly TUN_MULTI_QUEUE: typeof TUN_MULTI_QUEUE;
  readonly TUN_VNET_HDR: typeof TUN_VNET_HDR;
}

// src/host and dist/host are both two levels below the repository root.
const ADDON_URL = new URL('../../native/build/Release/weft.node', import.meta.url);

let addon: WeftAddon | undefined;

/** The addon, loaded once. Throws WeftError WEFT_ADDON_MISSING when it is not built or does not load. */
export function loadAddon(): WeftAddon {
  if (addon !== undefined) return addon;
  const path = fileURLToPath(ADDON_URL);
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
