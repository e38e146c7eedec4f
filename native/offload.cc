// TSO, checksum completion and TCP coalescing: see offload.h for the contracts.
#include "offload.h"

#include <endian.h>
#include <string.h>

#include "checksum.h"
#include "wire.h"

namespace weft {
namespace {

constexpr size_t kTcpMinHdr = 20;
constexpr size_t kTcpCsumOffset = 16;

// IPv4 header fields (offsets).
constexpr size_t kIpTotLen = 2, kIpId = 4, kIpFrag = 6, kIpTtl = 8, kIpProto = 9, kIpCsum = 10, kIpSaddr = 12;
constexpr uint16_t kIpDf = 0x4000, kIpMfAndOffset = 0x3fff;

// TCP header fields (offsets) and flags.
constexpr size_t kTcpSeq = 4, kTcpAck = 8, kTcpDoff = 12, kTcpFlags = 13, kTcpWindow = 14;
constexpr uint8_t kFin = 0x01, kPsh = 0x08, kAck = 0x10, kCwr = 0x80;

inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// The pseudo-header sum of the IPv4 header at ip for a TCP segment of l4_len bytes.
inline uint32_t tcp_pseudo_sum(const uint8_t* ip, size_t l4_len) {
  return ipv4_pseudo_sum(load32(ip + kIpSaddr), load32(ip + kIpSaddr + 4), kProtoTcp, static_cast<uint16_t>(l4_len));
}

// Recomputes the IPv4 header checksum in place.
inline void fix_ip_csum(uint8_t* ip, size_t ihl) { store_csum(ip + kIpCsum, ipv4_header_csum(ip, ihl)); }

// The layout of an IPv4/TCP packet, when it is one.
struct TcpLayout {
  size_t ihl;      // IP header bytes
  size_t thl;      // TCP header bytes
  size_t tot_len;  // IP total length
  size_t payload;  // TCP payload bytes
};

// IPv4, not a fragment, TCP, header lengths consistent with total length <= len.
bool parse_tcp(const uint8_t* pkt, size_t len, TcpLayout* l) {
  if (len < kIpv4MinHeader + kTcpMinHdr || (pkt[0] >> 4) != 4 || pkt[kIpProto] != kProtoTcp) return false;
  l->ihl = static_cast<size_t>(pkt[0] & 0x0f) * 4;
  l->tot_len = load_be16(pkt + kIpTotLen);
  if (l->ihl < kIpv4MinHeader || l->tot_len > len || (load_be16(pkt + kIpFrag) & kIpMfAndOffset) != 0) return false;
  if (l->tot_len < l->ihl + kTcpMinHdr) return false;
  l->thl = static_cast<size_t>(pkt[l->ihl + kTcpDoff] >> 4) * 4;
  if (l->thl < kTcpMinHdr || l->ihl + l->thl > l->tot_len) return false;
  l->payload = l->tot_len - l->ihl - l->thl;
  return true;
}

}  // namespace

bool vnet_hdr_read(const uint8_t* p, size_t len, VnetHdr* h) {
  if (len < kVnetHdrLen) return false;
  uint16_t v[4];
  memcpy(v, p + 2, 8);
  h->flags = p[0];
  h->gso_type = p[1];
  h->hdr_len = le16toh(v[0]);
  h->gso_size = le16toh(v[1]);
  h->csum_start = le16toh(v[2]);
  h->csum_offset = le16toh(v[3]);
  return true;
}

void vnet_hdr_write(uint8_t* p, const VnetHdr& h) {
  const uint16_t v[4] = {htole16(h.hdr_len), htole16(h.gso_size), htole16(h.csum_start), htole16(h.csum_offset)};
  p[0] = h.flags;
  p[1] = h.gso_type;
  memcpy(p + 2, v, 8);
}

bool complete_checksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset) {
  // csum_start and csum_offset are 16-bit: the sum cannot overflow size_t.
  if ((csum_offset & 1) != 0 || static_cast<size_t>(csum_start) + csum_offset + 2 > len) return false;
  const uint16_t folded = csum_fold(csum_partial(pkt + csum_start, len - csum_start, 0));
  store_csum(pkt + csum_start + csum_offset, folded == 0 ? 0xffff : folded);
  return true;
}

bool leave_tcp_checksum_partial(uint8_t* pkt, size_t len) {
  TcpLayout l;
  if (!parse_tcp(pkt, len, &l) || l.tot_len != len) return false;
  store_csum(pkt + l.ihl + kTcpCsumOffset, csum_fold_partial(tcp_pseudo_sum(pkt, len - l.ihl)));
  return true;
}

namespace {

// The checks and arithmetic both segmenters share: see tso_segment in offload.h.
struct TsoShape {
  TcpLayout l;
  size_t hdrs;
  size_t mss;
  size_t n;
  size_t last_payload;
};

bool tso_shape(const uint8_t* pkt, size_t len, const VnetHdr& h, int max_segs, TsoShape* s) {
  if ((h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4 || h.gso_size == 0) return false;
  if (!parse_tcp(pkt, len, &s->l) || s->l.payload == 0) return false;
  if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 && (h.csum_start != s->l.ihl || h.csum_offset != kTcpCsumOffset)) return false;
  s->hdrs = s->l.ihl + s->l.thl;
  s->mss = h.gso_size < s->l.payload ? h.gso_size : s->l.payload;
  s->n = (s->l.payload + s->mss - 1) / s->mss;
  s->last_payload = s->l.payload - (s->n - 1) * s->mss;
  return max_segs >= 1 && s->n <= static_cast<size_t>(max_segs);
}

// Writes segment i's IP and TCP headers at `ip`; `payload_sum` is the
// partial sum of its payload (which starts at an even offset of the TCP
// header: thl is a multiple of 4, so the sums chain). `partial`: the TCP
// checksum is left as the pseudo-header sum (CHECKSUM_PARTIAL), and
// payload_sum is not used.
void tso_write_headers(uint8_t* ip, const uint8_t* pkt, const TsoShape& s, size_t i, uint32_t payload_sum, bool partial) {
  const size_t seg_payload = i + 1 < s.n ? s.mss : s.last_payload;
  uint8_t* tcp = ip + s.l.ihl;
  memcpy(ip, pkt, s.hdrs);
  store_be16(ip + kIpTotLen, static_cast<uint16_t>(s.hdrs + seg_payload));
  store_be16(ip + kIpId, static_cast<uint16_t>(load_be16(pkt + kIpId) + i));
  fix_ip_csum(ip, s.l.ihl);
  uint8_t flags = pkt[s.l.ihl + kTcpFlags];
  if (i + 1 < s.n) flags &= static_cast<uint8_t>(~(kFin | kPsh));
  if (i > 0) flags &= static_cast<uint8_t>(~kCwr);
  tcp[kTcpFlags] = flags;
  store_be32(tcp + kTcpSeq, load_be32(pkt + s.l.ihl + kTcpSeq) + static_cast<uint32_t>(i * s.mss));
  if (partial) {
    store_csum(tcp + kTcpCsumOffset, csum_fold_partial(tcp_pseudo_sum(ip, s.l.thl + seg_payload)));
    return;
  }
  tcp[kTcpCsumOffset] = 0;
  tcp[kTcpCsumOffset + 1] = 0;
  const uint32_t sum = csum_partial(tcp, s.l.thl, tcp_pseudo_sum(ip, s.l.thl + seg_payload));
  store_csum(tcp + kTcpCsumOffset, csum_fold(sum + payload_sum < sum ? sum + payload_sum + 1 : sum + payload_sum));
}

}  // namespace

int tso_segment(const uint8_t* pkt, size_t len, const VnetHdr& h, uint8_t* out, size_t out_cap, size_t headroom,
                size_t* stride_out, uint16_t* seg_lens, int max_segs) {
  TsoShape s;
  if (!tso_shape(pkt, len, h, max_segs, &s) || headroom > out_cap) return -1;
  const size_t stride = headroom + s.hdrs + s.mss;  // headroom <= out_cap, the rest < 2^17: no overflow
  if ((s.n - 1) > (out_cap - headroom) / stride) return -1;
  if ((s.n - 1) * stride + headroom + s.hdrs + s.last_payload > out_cap) return -1;
  for (size_t i = 0; i < s.n; i++) {
    const size_t seg_payload = i + 1 < s.n ? s.mss : s.last_payload;
    uint8_t* ip = out + i * stride + headroom;
    const uint32_t payload_sum = csum_partial_copy(ip + s.hdrs, pkt + s.hdrs + i * s.mss, seg_payload, 0);
    tso_write_headers(ip, pkt, s, i, payload_sum, false);
    seg_lens[i] = static_cast<uint16_t>(s.hdrs + seg_payload);
  }
  *stride_out = stride;
  return static_cast<int>(s.n);
}

int tso_headers(const uint8_t* pkt, size_t len, const VnetHdr& h, uint8_t* out, size_t out_cap, size_t headroom,
                TsoPlan* plan, int max_segs, bool partial) {
  TsoShape s;
  if (!tso_shape(pkt, len, h, max_segs, &s) || headroom > out_cap) return -1;
  const size_t stride = headroom + s.hdrs;
  if (s.n > out_cap / stride) return -1;
  for (size_t i = 0; i < s.n; i++) {
    const size_t seg_payload = i + 1 < s.n ? s.mss : s.last_payload;
    const uint32_t payload_sum = partial ? 0 : csum_partial(pkt + s.hdrs + i * s.mss, seg_payload, 0);
    tso_write_headers(out + i * stride + headroom, pkt, s, i, payload_sum, partial);
  }
  plan->hdr_stride = stride;
  plan->hdrs = s.hdrs;
  plan->mss = s.mss;
  plan->last_payload = s.last_payload;
  return static_cast<int>(s.n);
}

// Takes pkt as the head of a new packet; true when it may be extended.
bool TcpCoalescer::start(const uint8_t* pkt, size_t len, bool partial) {
  TcpLayout l;
  partial_ = partial;
  head_csum_start_ = 0;
  if (!parse_tcp(pkt, len, &l) || l.tot_len != len) return false;
  if (partial) {
    head_csum_start_ = static_cast<uint16_t>(l.ihl);
    head_hdrs_ = static_cast<uint16_t>(l.ihl + l.thl);
  }
  if (l.ihl != kIpv4MinHeader || l.payload == 0) return false;
  if (pkt[l.ihl + kTcpFlags] != kAck) return false;  // PSH closes at once; other flags never merge
  thl_ = static_cast<uint16_t>(l.thl);
  gso_size_ = static_cast<uint16_t>(l.payload);
  head_id_ = load_be16(pkt + kIpId);
  df_ = (load_be16(pkt + kIpFrag) & kIpDf) != 0;
  next_seq_ = load_be32(pkt + l.ihl + kTcpSeq) + static_cast<uint32_t>(l.payload);
  head_verified_ = false;
  return true;
}

bool TcpCoalescer::head_checksum_ok() const {
  const size_t l4_len = head_len_ - kIpv4MinHeader;
  return csum_fold(csum_partial(head_, kIpv4MinHeader, 0)) == 0 &&
         csum_fold(csum_partial(head_ + kIpv4MinHeader, l4_len, tcp_pseudo_sum(head_, l4_len))) == 0;
}

bool TcpCoalescer::add(const uint8_t* pkt, size_t len, bool partial) {
  if (segs_ == 0) {
    if (len == 0 || len > kMaxIpv4Packet) return false;
    head_ = pkt;
    head_len_ = len;
    len_ = len;
    segs_ = 1;
    psh_ = false;
    open_ = start(pkt, len, partial);
    return true;
  }
  if (!open_ || segs_ == kMaxCoalescedSegs || partial != partial_) return false;

  TcpLayout l;
  if (!parse_tcp(pkt, len, &l) || l.ihl != kIpv4MinHeader || l.tot_len != len || l.thl != thl_) return false;
  if (l.payload == 0 || l.payload > gso_size_) return false;
  if (len_ + l.payload > kMaxIpv4Packet) return false;

  const uint8_t* tcp = pkt + kIpv4MinHeader;
  const uint8_t* head_tcp = head_ + kIpv4MinHeader;
  const uint8_t flags = tcp[kTcpFlags];
  if (flags != kAck && flags != (kAck | kPsh)) return false;
  // IP: version/IHL, TOS; frag word (DF equal, no MF/offset: both parsed); TTL, protocol; addresses.
  if (memcmp(pkt, head_, 2) != 0 || load_be16(pkt + kIpFrag) != load_be16(head_ + kIpFrag) ||
      memcmp(pkt + kIpTtl, head_ + kIpTtl, 2) != 0 || memcmp(pkt + kIpSaddr, head_ + kIpSaddr, 8) != 0) {
    return false;
  }
  if (!df_ && load_be16(pkt + kIpId) != static_cast<uint16_t>(head_id_ + segs_)) return false;
  if (csum_fold(csum_partial(pkt, kIpv4MinHeader, 0)) != 0) return false;
  // TCP: ports; seq; ack; data offset byte (with the reserved/AE bits); window; options.
  if (memcmp(tcp, head_tcp, 4) != 0 || load_be32(tcp + kTcpSeq) != next_seq_ ||
      memcmp(tcp + kTcpAck, head_tcp + kTcpAck, 4) != 0 || tcp[kTcpDoff] != head_tcp[kTcpDoff] ||
      memcmp(tcp + kTcpWindow, head_tcp + kTcpWindow, 2) != 0 ||
      memcmp(tcp + kTcpMinHdr, head_tcp + kTcpMinHdr, thl_ - kTcpMinHdr) != 0) {
    return false;
  }

  if (!partial_) {
    if (!head_verified_) {
      if (!head_checksum_ok()) {
        open_ = false;  // the head goes to the kernel alone, which drops it
        return false;
      }
      head_verified_ = true;
    }
    if (csum_fold(csum_partial(tcp, len - kIpv4MinHeader, tcp_pseudo_sum(pkt, len - kIpv4MinHeader))) != 0) return false;
  } else if (!head_verified_) {
    if (csum_fold(csum_partial(head_, kIpv4MinHeader, 0)) != 0) {
      open_ = false;
      return false;
    }
    head_verified_ = true;
  }

  iov_[segs_ + 1] = {const_cast<uint8_t*>(tcp + thl_), l.payload};
  len_ += l.payload;
  segs_++;
  next_seq_ += static_cast<uint32_t>(l.payload);
  if (flags & kPsh) {
    psh_ = true;
    open_ = false;
  }
  if (l.payload < gso_size_) open_ = false;
  return true;
}

size_t TcpCoalescer::flush(const iovec** iov, int* iovcnt) {
  if (segs_ == 0) {
    *iov = nullptr;
    *iovcnt = 0;
    return 0;
  }
  VnetHdr h = {};
  if (segs_ == 1) {
    if (head_csum_start_ != 0) {
      h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      h.hdr_len = head_hdrs_;
      h.csum_start = head_csum_start_;
      h.csum_offset = kTcpCsumOffset;
    }
    iov_[0] = {hdr_, kVnetHdrLen};
    iov_[1] = {const_cast<uint8_t*>(head_), head_len_};
  } else {
    const size_t hdrs = kIpv4MinHeader + thl_;
    uint8_t* ip = hdr_ + kVnetHdrLen;
    memcpy(ip, head_, hdrs);
    store_be16(ip + kIpTotLen, static_cast<uint16_t>(len_));
    fix_ip_csum(ip, kIpv4MinHeader);
    if (psh_) ip[kIpv4MinHeader + kTcpFlags] |= kPsh;
    store_csum(ip + kIpv4MinHeader + kTcpCsumOffset, csum_fold_partial(tcp_pseudo_sum(ip, len_ - kIpv4MinHeader)));
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.hdr_len = static_cast<uint16_t>(hdrs);
    h.gso_size = gso_size_;
    h.csum_start = kIpv4MinHeader;
    h.csum_offset = kTcpCsumOffset;
    iov_[0] = {hdr_, kVnetHdrLen + hdrs};
    iov_[1] = {const_cast<uint8_t*>(head_ + hdrs), head_len_ - hdrs};
  }
  vnet_hdr_write(hdr_, h);
  *iov = iov_;
  *iovcnt = segs_ + 1;
  const size_t n = kVnetHdrLen + len_;
  segs_ = 0;
  len_ = 0;
  open_ = false;
  return n;
}

}  // namespace weft
