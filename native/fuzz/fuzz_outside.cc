// libFuzzer target, outside (UDP -> TUN): one received buffer as the worker
// gets it from recvmmsg, through the GRO train split, the per-datagram
// checks and the TCP coalescer, flushed as a TUN write would be.
// Input: byte 0 picks the outer source (a peer or a stranger), bytes 1-2 the
// GRO segment size (0 = none), the rest is the buffer.
#include <stddef.h>
#include <stdint.h>

#include <memory>

#include "../offload.h"
#include "fuzz_common.h"

using namespace weft;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  static const uint32_t sources[4] = {0xc6120001u, 0xc6120003u, 0xc6120007u, 0xc6120063u};
  const uint32_t src = sources[data[0] & 3];
  const size_t seg = size_t(data[1]) << 8 | data[2];
  static const size_t cap = kVnetHdrLen + kMaxIpv4Packet;
  static std::unique_ptr<uint8_t[]> buf(new uint8_t[cap]);
  TcpCoalescer co(buf.get(), cap);
  const uint8_t* out = nullptr;
  accept_train(data + 3, size - 3, seg, src, fuzz_table(), kFuzzSelf, 1, fuzz_counters(), [&](const uint8_t* inner, size_t n) {
    if (!co.add(inner, n)) {
      co.flush(&out);
      co.add(inner, n);
    }
  });
  co.flush(&out);
  return 0;
}
