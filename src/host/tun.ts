// Owns the kernel TUN device: opening it, the batch reader over its fd,
// writes into it, and closing it (which removes the non-persistent device).

import { closeSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import type { TunBatchHandler, TunDevice, TunErrorHandler } from './tun_port.js';
import { WeftError } from '../errors.js';
import { loadAddon, type TunReader, type WeftAddon } from './addon.js';

/** Why opening failed, by errno name: what the operator can do about it. */
const OPEN_HINTS: Readonly<Record<string, string>> = {
  EPERM: 'weftd needs CAP_NET_ADMIN',
  EACCES: 'weftd needs CAP_NET_ADMIN',
  ENOENT: '/dev/net/tun is missing: load the tun module',
  ENODEV: '/dev/net/tun is missing: load the tun module',
  EBUSY: 'the device is in use (another weftd?) or was created with other flags',
};

export class KernelTun implements TunDevice {
  private reader: TunReader | undefined;
  private closed = false;
  failed = false;

  private constructor(
    private readonly addon: WeftAddon,
    readonly fd: number,
    readonly name: string,
  ) {}

  /**
   * Opens (creating if needed) the TUN device `name`, or one more queue of
   * it with TUN_MULTI_QUEUE; `flags` are the addon's TUN_* bits. Throws
   * WeftError WEFT_TUN_OPEN naming the device and the errno, or WEFT_ADDON_MISSING.
   */
  static open(name: string, flags = 0): KernelTun {
    const addon = loadAddon();
    let opened: { fd: number; name: string };
    try {
      opened = addon.openTun(name, flags);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      const message = err instanceof Error ? err.message : String(err);
      // The addon's message is `open TUN "<name>": <reason>`.
      const prefix = `open TUN "${name}": `;
      const reason = message.startsWith(prefix) ? message.slice(prefix.length) : message;
      const hint = OPEN_HINTS[code];
      throw new WeftError(
        'WEFT_TUN_OPEN',
        `cannot open TUN device "${name}": ${code} (${reason})${hint === undefined ? '' : `; ${hint}`}`,
        { name, errno: code },
        { cause: err },
      );
    }
    return new KernelTun(addon, opened.fd, opened.name);
  }

  startReading(slotSize: number, batch: number, onBatch: TunBatchHandler, onError?: TunErrorHandler): void {
    if (this.closed) throw new Error(`TUN ${this.name}: startReading() after close()`);
    if (this.reader !== undefined) throw new Error(`TUN ${this.name}: startReading() called twice`);
    if (!Number.isInteger(slotSize) || slotSize < 1) {
      throw new RangeError(`slotSize must be an integer >= 1, got ${slotSize}`);
    }
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be an integer >= 1, got ${batch}`);

    // Allocated once; every batch lands in the same memory.
    const slab = Buffer.alloc(slotSize * batch);
    const lengths = new Uint32Array(batch);
    const reader = new this.addon.TunReader(this.fd, slab, slotSize, lengths, (count, errno, last) => {
      if (count > 0) onBatch(slab, lengths, count);
      if (last) this.failed = true;
      if (errno !== 0 && onError !== undefined) onError(errno, getSystemErrorName(-errno));
    });
    reader.start();
    this.reader = reader;
  }

  write(buf: Buffer, offset: number, length: number): boolean {
    // After close() the fd number may already belong to someone else.
    if (this.closed) return false;
    return this.addon.writePacket(this.fd, buf, offset, length) === length;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    this.reader = undefined;
    closeSync(this.fd);
  }
}
