// libFuzzer target, outside (UDP -> TUN): one received buffer as the worker
// gets it from recvmmsg, through the GRO train split, the per-datagram
// checks and the TCP coalescer, flushed as a TUN write would be.
// Input: byte 0 picks the outer source (a peer or a stranger), bytes 1-2 the
// GRO segment size (0 = none), the rest is the buffer.
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

using namespace weft;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint32_t src = fuzz_source(data[0]);
  const size_t seg = size_t(data[1]) << 8 | data[2];
  static TcpCoalescer co;
  const bool partial = (fuzz_table().flags_of_sender(src) & kPeerTcpCsumPartial) != 0;
  accept_train(data + 3, size - 3, seg, src, fuzz_table(), kFuzzSelf, 1, fuzz_counters(), [&](const uint8_t* inner, size_t n) {
    if (!co.add(inner, n, partial)) {
      fuzz_flush(co);
      co.add(inner, n, partial);
    }
  });
  fuzz_flush(co);
  return 0;
}
