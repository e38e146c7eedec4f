// The UDP seam the js engine sends and receives through: batch-free but
// allocation-aware datagram I/O, provided by the kernel (dgram_udp.ts) or an in-memory twin (tests).

/**
 * Called for each datagram received; `buf` is borrowed until the call
 * returns and `srcIp` is the sender's IPv4 address as an unsigned 32-bit
 * integer (the route table's form).
 */
export type DatagramHandler = (buf: Buffer, len: number, srcIp: number) => void;

export type SendDone = (err: Error | null) => void;

export interface UdpTransport {
  /**
   * Sends `len` bytes of `buf` to ip:port (ip as an unsigned 32-bit
   * integer), from a source port chosen by
   * the flow hash `hash`. The transport owns `buf` until it calls `done`
   * (exactly once, success or not); then the caller may reuse it. Failures
   * are reported to `done` as an error, never thrown. `done` has dgram's
   * callback shape so the kernel transport can hand it over as it is.
   */
  send(buf: Buffer, len: number, ip: number, port: number, hash: number, done: SendDone): void;
  /** Starts delivering datagrams to `handler`. */
  start(handler: DatagramHandler): Promise<void>;
  close(): Promise<void>;
}
