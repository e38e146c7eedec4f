// libFuzzer target, outside (UDP -> TUN): one received buffer as the worker
// gets it from recvmmsg, through the GRO train split, the per-datagram
// checks and the TCP coalescer, flushed as a TUN write would be.
// Input: byte 0 picks the outer source (a peer or a stranger), bytes 1-2 the
// GRO segment size (0 = none), the rest is the buffer.
#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

#include "../offload.h"
#include "fuzz_common.h"

using namespace weft;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  static const uint32_t sources[4] = {0xc6120001u, 0xc6120003u, 0xc6120007u, 0xc6120063u};
  const uint32_t src = sources[data[0] & 3];
  const size_t seg = size_t(data[1]) << 8 | data[2];
  static TcpCoalescer co;
  // Reads every byte a writev would, so ASan sees any iovec past its packet.
  auto flush = [] {
    const iovec* iov;
    int iovcnt;
    const size_t n = co.flush(&iov, &iovcnt);
    size_t seen = 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < iovcnt; i++) {
      for (size_t k = 0; k < iov[i].iov_len; k++) sink = sink ^ static_cast<const uint8_t*>(iov[i].iov_base)[k];
      seen += iov[i].iov_len;
    }
    if (seen != n) __builtin_trap();
  };
  const bool partial = (fuzz_table().flags_of_sender(src) & kPeerTcpCsumPartial) != 0;
  accept_train(data + 3, size - 3, seg, src, fuzz_table(), kFuzzSelf, 1, fuzz_counters(), [&](const uint8_t* inner, size_t n) {
    if (!co.add(inner, n, partial)) {
      flush();
      co.add(inner, n, partial);
    }
  });
  flush();
  return 0;
}
