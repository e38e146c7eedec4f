// The TUN seam the engines read and write through: batch reads and single
// writes of IP packets, provided by the kernel (tun.ts) or an in-memory twin (tests).

/**
 * Called once per batch read from the TUN: packet i is at
 * slab[i * slotSize, i * slotSize + lengths[i]). The slab and lengths are
 * borrowed until the call returns; the next batch overwrites them.
 */
export type TunBatchHandler = (slab: Buffer, lengths: Uint32Array, count: number) => void;

/**
 * A read error reported by the device: `errno` is positive, `code` its name
 * ('EBADFD', ...). Errors that end a batch are transient (the reader keeps
 * going; the packet read was lost); after a poll error such as EBADF (the
 * device was deleted) the reader has stopped and `failed` is true.
 */
export type TunErrorHandler = (errno: number, code: string) => void;

/**
 * An L3 TUN device (no packet-info header). Lifecycle: startReading (once)
 * -> close (idempotent). Single-threaded: all calls and callbacks run on
 * the main thread.
 */
export interface TunPort {
  readonly name: string;
  /**
   * Reads batches of up to `batch` packets of up to `slotSize` bytes (the
   * kernel cuts a longer packet to slotSize and says nothing: a length of
   * slotSize means the packet may have been cut). onBatch borrows the slab
   * and lengths until it returns: the next batch overwrites them, so copy
   * what must outlive the call. Read errors go to onError, never thrown.
   * Once per device.
   */
  startReading(slotSize: number, batch: number, onBatch: TunBatchHandler, onError?: TunErrorHandler): void;
  /** Writes one packet; false when the kernel refused it or the device is closed (the caller counts it). `buf` is not retained. */
  write(buf: Buffer, offset: number, length: number): boolean;
  /** True once reading stopped on a device error (the device was deleted, say): nothing more will be read. */
  readonly failed: boolean;
  /** Stops reading and releases the device. Idempotent. */
  close(): void;
}

/** A kernel TUN queue, whose fd native threads may use until close(). */
export interface TunDevice extends TunPort {
  /** The device's file descriptor, owned by the device until close(). */
  readonly fd: number;
}
