// TunReader: batch reads from a TUN fd on Node's libuv loop into a JS-owned slab,
// one JS callback per batch (the js engine's TUN reads).
//
// JS contract (validated in the constructor; TypeError/RangeError otherwise):
//
//   new TunReader(fd, slab, slotSize, lengths, onBatch)
//     fd        a non-blocking fd; borrowed: the caller closes it, after stop().
//     slab      Buffer of at least lengths.length * slotSize bytes.
//     slotSize  bytes per packet slot (> 0); packet i lands at slab[i * slotSize].
//     lengths   Uint32Array; its length is the batch size; lengths[i] is packet i's length.
//     onBatch   (count, errno, last) => void, called once per batch on the main thread.
//               slab and lengths are borrowed until it returns: the next batch
//               overwrites them. errno is 0, or the errno of a read error that
//               ended the batch (EAGAIN/EINTR never show); the count packets read
//               before it are valid. A packet longer than slotSize is cut to
//               slotSize without an error (the kernel copies what fits): size
//               slots above the largest packet and treat a full slot as cut.
//               last is true on the final call after the fd itself failed (a
//               poll error, e.g. the device is gone, with count 0 and its errno;
//               or EFAULT when the slab or lengths were detached): the reader
//               has stopped itself.
//               A throw becomes an uncaught exception (process 'uncaughtException').
//   start()     begins polling; idempotent; throws once stopped.
//   stop()      idempotent; no callback runs after it returns (also from inside onBatch).
//
// slab and lengths must not be detached/transferred while the reader lives; if
// they are, the reader reports EFAULT once and stops instead of reading.
// A started reader keeps itself (and the loop) alive until stop(). A reader
// that is garbage collected, or alive at environment exit, stops itself.
#ifndef WEFT_TUN_READER_H_
#define WEFT_TUN_READER_H_

#include <node_api.h>

namespace weft {

// Defines the TunReader class. Returns its constructor, or nullptr with a JS exception pending.
napi_value tun_reader_define_class(napi_env env);

}  // namespace weft

#endif  // WEFT_TUN_READER_H_
