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

export interface TunPort {
  readonly name: string;
  /** Starts reading batches of up to `batch` packets of up to `slotSize` bytes; read errors go to onError, never thrown. Once per device. */
  startReading(slotSize: number, batch: number, onBatch: TunBatchHandler, onError?: TunErrorHandler): void;
  /** Writes one packet; false when the kernel refused it (the caller counts it). `buf` is not retained. */
  write(buf: Buffer, offset: number, length: number): boolean;
  /** True once reading stopped on a device error (the device was deleted, say): nothing more will be read. */
  readonly failed: boolean;
  /** Stops reading and releases the device. Idempotent. */
  close(): void;
}
