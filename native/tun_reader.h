// TunReader: batch reads from a TUN fd on Node's libuv loop into a JS-owned slab,
// one JS callback per batch. Also the Node-API argument helpers binding.cc shares.
//
// JS contract (validated in the constructor; TypeError/RangeError otherwise):
//
//   new TunReader(fd, slab, slotSize, lengths, onBatch)
//     fd        a non-blocking fd; borrowed: the caller closes it, after stop().
//     slab      Buffer of at least lengths.length * slotSize bytes.
//     slotSize  bytes per packet slot (> 0); packet i lands at slab[i * slotSize].
//     lengths   Uint32Array; its length is the batch size; lengths[i] is packet i's length.
//     onBatch   (count, errno) => void, called once per batch on the main thread.
//               slab and lengths are borrowed until it returns: the next batch
//               overwrites them. errno is 0, or the errno of a read error that
//               ended the batch (EAGAIN/EINTR never show); the count packets read
//               before it are valid. A packet longer than slotSize is cut to
//               slotSize without an error (the kernel copies what fits): size
//               slots above the largest packet and treat a full slot as cut. errno with count 0 and the reader stopped
//               means the fd itself failed (poll error, e.g. the device is gone).
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
