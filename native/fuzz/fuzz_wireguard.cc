// libFuzzer target, the WireGuard port (UDP -> TUN): one received buffer as
// a worker gets it from recvmmsg, through the GRO train split,
// accept_wireguard per datagram (message type and length, the handshake
// pre-checks: a keyed node's address, mac1; the transport path: index
// lookup, source, age, decryption in place, the counter limit, the replay
// window, the inner checks) and the TCP coalescer, flushed as a TUN write
// would be. Random bytes rarely decrypt, so the input can also ask for
// its payloads to be sealed with a session's key (or given a valid mac1)
// first: then the paths after a successful open run too, and a bit flipped
// after sealing exercises what follows a failed open.
//
// Input: byte 0 picks the outer source (a node without a key, two with
// keys, a stranger); bytes 1-2 the GRO segment size (0 = none); byte 3 the
// mode: 0 raw; 1 seal each datagram's bytes after a 3-byte prefix (which
// keypair, 16-bit counter) as a transport message; 2 seal, then flip the
// bit the prefix's last byte names; 3 write a valid mac1 into handshake-sized datagrams.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <memory>
#include <vector>

#include "../wg_outside.h"
#include "fuzz_common.h"

using namespace weft;

namespace {

const uint8_t kMac1Key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const uint8_t kSessionKey[2][32] = {{0xa1}, {0xb2}};
constexpr uint64_t kNow = 1000ull * 1000000000ull;

// The fuzz table with WireGuard sessions: keypair 101 with .3 (peer 1), 202 with .7 (peer 2), both fresh.
struct WgFixture {
  std::unique_ptr<RouteTable> table;
  std::shared_ptr<Keypair> kp[2];
  Mac1 mac1;
  WgFixture() {
    const RouteTable& base = fuzz_table();
    table = build_route_table(base.net_base, 16, 24, base.slots.data(), base.slots.size(), base.peer_ip.data(), base.peer_port.data(),
                              base.peer_wg_port.data(), base.peer_flags.data(), base.peer_ip.size(), false);
    memcpy(table->mac1_key, kMac1Key, sizeof(kMac1Key));
    table->pad_limit = 1440;
    table->wg.peer_next.assign(3, nullptr);
    table->wg.peer_current.assign(3, nullptr);
    table->wg.reserve(2);
    const uint32_t ips[2] = {0xc6120003u, 0xc6120007u};
    for (int i = 0; i < 2; i++) {
      // The peer seals with what is our receive key: both keys the same here.
      kp[i] = make_keypair(uint32_t(101 * (i + 1)), 7, kSessionKey[i], kSessionKey[i], true, ips[i], 51820, 1, kNow - 1000000000ull);
      table->wg.peer_current[size_t(i + 1)] = kp[i].get();
      if (!table->wg.index(kp[i])) __builtin_trap();
    }
    mac1.set_key(kMac1Key);
  }
};

WgFixture& fixture() {
  static WgFixture f;
  return f;
}

// Rewrites the datagram at dg (dlen bytes, room for the tag after it) as the input's mode asks; returns its new length.
size_t prepare(uint8_t* dg, size_t dlen, uint8_t mode, size_t room) {
  WgFixture& f = fixture();
  if ((mode == 1 || mode == 2) && dlen >= kWgHeaderLen && dlen + kWgTagLen <= room) {
    Keypair& k = *f.kp[dg[0] & 1];
    const uint64_t counter = uint64_t(dg[1]) << 8 | dg[2];
    const uint8_t flip = dg[dlen - 1];
    // The payload: the bytes after the prefix, sealed in place after a 16-byte header.
    uint8_t* pkt = dg + kWgHeaderLen;
    const size_t len = dlen - kWgHeaderLen;
    const size_t padded = wg_padded(len, f.table->pad_limit);
    if (kWgHeaderLen + padded + kWgTagLen > room) return dlen;
    const size_t n = wg_seal_in_place(pkt, len, k.seal[1], k.local_index, counter, f.table->pad_limit);
    if (n == 0) return dlen;
    if (mode == 2) dg[flip % n] ^= uint8_t(1 << (flip & 7));
    return n;
  }
  if (mode == 3 && (dlen == kWgInitiationLen || dlen == kWgResponseLen)) {
    store_le32(dg, dlen == kWgInitiationLen ? kWgInitiation : kWgResponse);
    const size_t at = dlen == kWgInitiationLen ? kWgInitiationMac1 : kWgResponseMac1;
    f.mac1.compute(dg, at, dg + at);
  }
  return dlen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint32_t src = fuzz_source(data[0]);
  const size_t seg_in = size_t(data[1]) << 8 | data[2];
  const uint8_t mode = data[3] & 3;
  WgFixture& f = fixture();
  // The train, each datagram given room for its tag and padding (as a receive slot has).
  const uint8_t* in = data + 4;
  const size_t in_len = size - 4;
  std::vector<uint8_t> buf;
  std::vector<size_t> lens;
  for_each_datagram(in, in_len, seg_in, [&](const uint8_t* d, size_t dlen) {
    const size_t room = dlen + kWgHeaderLen + kWgTailroom;
    std::vector<uint8_t> dg(room);
    memcpy(dg.data(), d, dlen);
    const size_t n = prepare(dg.data(), dlen, mode, room);
    buf.insert(buf.end(), dg.begin(), dg.begin() + ptrdiff_t(n));
    lens.push_back(n);
  });
  static TcpCoalescer co;
  const bool partial = (f.table->flags_of_sender(src) & kPeerTcpCsumPartial) != 0;
  size_t off = 0;
  for (size_t dlen : lens) {
    const uint8_t* inner = nullptr;
    size_t inner_len = 0;
    const WgVerdict v = accept_wireguard(buf.data() + off, dlen, src, *f.table, kFuzzSelf, f.mac1, 0, kNow, fuzz_counters(), &inner, &inner_len);
    if (v == WgVerdict::kData) {
      // accept_inner checked the packet lies within the datagram.
      if (inner < buf.data() + off || inner + inner_len > buf.data() + off + dlen) __builtin_trap();
      if (!co.add(inner, inner_len, partial)) {
        fuzz_flush(co);
        co.add(inner, inner_len, partial);
      }
    }
    off += dlen;
  }
  fuzz_flush(co);
  return 0;
}
