// libFuzzer target, inside (TUN -> UDP): one read from a vnet-header TUN as
// the worker gets it: the vnet header, the route decision, then what the
// worker does next: the ICMP error for an unowned destination, TSO
// segmentation (headers only, and the copying variant) for a super-packet,
// or checksum completion.
// Input: a 10-byte virtio_net_hdr, then the packet.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <memory>

#include "../inside.h"
#include "../offload.h"
#include "fuzz_common.h"

using namespace weft;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  VnetHdr h{};
  if (!vnet_hdr_read(data, size, &h)) return 0;
  const uint8_t* pkt = data + kVnetHdrLen;
  const size_t len = size - kVnetHdrLen;
  const int32_t peer = classify_inside(pkt, len, fuzz_table(), fuzz_counters());
  if (peer == kInsideUnreachable) {
    uint8_t icmp[kIcmpErrorMax];
    write_icmp_unreachable(icmp, pkt, len, 0xc6130200u, 0);
    return 0;
  }
  if (peer < 0) return 0;
  static const size_t cap = 64 * (kGpeHeaderLen + 60 + 60 + 1500);
  static std::unique_ptr<uint8_t[]> out(new uint8_t[cap]);
  if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    TsoPlan plan;
    tso_headers(pkt, len, h, out.get(), cap, kGpeHeaderLen, &plan, 64, (fuzz_table().peer_flags[size_t(peer)] & kPeerTcpCsumPartial) != 0);
    size_t stride;
    uint16_t seg_lens[64];
    tso_segment(pkt, len, h, out.get(), cap, kGpeHeaderLen, &stride, seg_lens, 64);
    return 0;
  }
  if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    static std::unique_ptr<uint8_t[]> copy(new uint8_t[65536 + 64]);
    if (len <= 65536 + 64) {
      memcpy(copy.get(), pkt, len);
      if (!leave_tcp_checksum_partial(copy.get(), len)) complete_checksum(copy.get(), len, h.csum_start, h.csum_offset);
    }
  }
  return 0;
}
