// Offloads between the TUN's virtio_net_hdr world and single IPv4 packets:
// TCP segmentation (TSO) of the kernel's super-packets before sending,
// checksum completion, and TCP coalescing (GRO) before writing into the TUN.
// Plain C++17, no Node-API, no allocation: every buffer is the caller's.
//
// Where these sit in the engine:
//
//   TUN read (IFF_VNET_HDR) -> vnet_hdr_read
//     gso_type TCPV4           -> tso_segment into a UDP GSO send buffer
//     gso NONE + NEEDS_CSUM    -> complete_checksum, then encapsulate as usual
//     gso NONE, no NEEDS_CSUM  -> encapsulate as usual
//     any other gso_type       -> a counted drop (TSO6/UDP_L4 are not offered to the kernel for IPv4-only weft)
//   UDP receive (decapsulated inner packets, in arrival order)
//     -> TcpCoalescer::add / flush -> one TUN writev per flush (vnet header
//        and headers from the coalescer, payloads straight from the receive buffers)
#ifndef WEFT_OFFLOAD_H_
#define WEFT_OFFLOAD_H_

#include <linux/if_tun.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

// The virtio_net_hdr constants (the kernel's ABI, from linux/virtio_net.h).
// That header cannot be included from C++: a struct in it has a field named
// `class`. Guarded, so a C translation unit may include both.
#ifndef VIRTIO_NET_HDR_F_NEEDS_CSUM
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1  // csum_start/csum_offset describe an unfinished checksum
#endif
#ifndef VIRTIO_NET_HDR_F_DATA_VALID
#define VIRTIO_NET_HDR_F_DATA_VALID 2  // the checksum is known good
#endif
#ifndef VIRTIO_NET_HDR_GSO_NONE
#define VIRTIO_NET_HDR_GSO_NONE 0
#endif
#ifndef VIRTIO_NET_HDR_GSO_TCPV4
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP
#define VIRTIO_NET_HDR_GSO_UDP 3
#endif
#ifndef VIRTIO_NET_HDR_GSO_TCPV6
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#endif
// Debian's kernel headers may predate UDP segmentation offload (the running
// kernel has it).
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif
#ifndef VIRTIO_NET_HDR_GSO_ECN
#define VIRTIO_NET_HDR_GSO_ECN 0x80  // with TCPV4/6: the first segment has CWR set
#endif
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace weft {

// Bytes of the virtio_net_hdr in front of every packet on an IFF_VNET_HDR
// TUN, at the default TUNSETVNETHDRSZ (struct virtio_net_hdr, no num_buffers).
constexpr size_t kVnetHdrLen = 10;

// Largest IPv4 packet (the total-length field is 16 bits).
constexpr size_t kMaxIpv4Packet = 65535;

// A virtio_net_hdr in host byte order. On the wire (TUN) its 16-bit fields
// are little-endian: the TUN's default on little-endian hosts, and what
// vnet_hdr_read/write convert from/to.
struct VnetHdr {
  uint8_t flags;         // VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID
  uint8_t gso_type;      // VIRTIO_NET_HDR_GSO_*, possibly | VIRTIO_NET_HDR_GSO_ECN
  uint16_t hdr_len;      // a hint only (the kernel sends skb_headlen, which may include payload)
  uint16_t gso_size;     // bytes of L4 payload per segment (the MSS)
  uint16_t csum_start;   // from the start of the IP header
  uint16_t csum_offset;  // from csum_start to the checksum field
};

// Reads the header at p (kVnetHdrLen bytes). False when len < kVnetHdrLen.
bool vnet_hdr_read(const uint8_t* p, size_t len, VnetHdr* h);

// Writes `h` at p (kVnetHdrLen bytes, which the caller guarantees).
void vnet_hdr_write(uint8_t* p, const VnetHdr& h);

// Completes a CHECKSUM_PARTIAL packet as a NIC would: sums pkt[csum_start,
// len) (the checksum field already holds the pseudo-header sum, as Linux
// leaves it), folds, and stores the result at csum_start + csum_offset (a
// result of 0 is stored as 0xffff, as Linux's skb_checksum_help does: the
// same value in ones' complement, and never "no checksum" for UDP).
// Returns false, touching nothing, when the field does not lie within
// [csum_start, len) or csum_offset is odd (every real protocol's is even:
// UDP 6, TCP 16, ICMP 2): a malformed header from the TUN is a counted drop.
bool complete_checksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

// Splits an IPv4/TCP super-packet (pkt, len: the packet after its vnet
// header; h: that header) into MSS-sized IPv4/TCP packets, as the kernel's
// TSO would, ready for one UDP_SEGMENT sendmsg.
//
// Accepts: gso_type VIRTIO_NET_HDR_GSO_TCPV4 (ECN bit allowed), gso_size > 0;
// IPv4 with IHL >= 5 (options are copied into every segment), not a
// fragment, protocol TCP, total length within len (trailing bytes beyond it
// are ignored); TCP data offset >= 5 within the packet (options, timestamps
// included, copied unchanged); at least one payload byte; when h.flags has
// NEEDS_CSUM, csum_start = IHL and csum_offset = 16 (anything else means the
// header describes another packet). The incoming checksums are ignored:
// every checksum is computed from scratch.
//
// Output: segment i (an IPv4 packet of seg_lens[i] bytes) is written at
//   out + i * stride + headroom,   stride = headroom + IHL + TCP header + mss,
// where mss = min(gso_size, payload). The headroom bytes and the gap after a
// short last segment are not written: the caller fills each headroom (the
// VXLAN-GPE header) and sends out[0, (n-1) * stride + headroom + seg_lens[n-1])
// as datagrams of `stride` bytes (the last one shorter) with UDP_SEGMENT =
// stride, in chunks of at most the kernel's UDP GSO segment limit.
// Per segment: IP total length, IP id = id + i (mod 2^16, as Linux's TSO
// does), IP header checksum; TCP seq = seq + i * mss; FIN and PSH only on the
// last segment; CWR only on the first; the TCP checksum complete.
//
// Returns the segment count n (1 when the payload fits one segment), or -1,
// writing nothing defined, when the packet is not acceptable as above, or
// out_cap < (n-1) * stride + headroom + seg_lens[n-1], or n > max_segs.
// pkt and out must not overlap. *stride_out and seg_lens[0, n) are set on success.
int tso_segment(const uint8_t* pkt, size_t len, const VnetHdr& h, uint8_t* out, size_t out_cap, size_t headroom,
                size_t* stride_out, uint16_t* seg_lens, int max_segs);

// Where tso_headers put things: segment i's headers (IP + TCP, hdrs bytes,
// checksums complete) at out + i * hdr_stride + headroom; its payload stays
// in the super-packet at pkt + hdrs + i * mss, mss bytes (last_payload for
// the last segment).
struct TsoPlan {
  size_t hdr_stride;
  size_t hdrs;
  size_t mss;
  size_t last_payload;
};

// tso_segment without copying the payload: same acceptance rules and the
// same segments, but only the headers are written (into `out`), so a sender
// can gather [headroom + headers, payload] pairs straight from the
// super-packet with sendmsg. pkt must stay untouched while those are sent.
// Returns the segment count, or -1 as tso_segment does (out_cap <
// n * (headroom + hdrs) included).
// partial: each segment's TCP checksum is left as the pseudo-header sum
// (CHECKSUM_PARTIAL, for a peer that takes them: kPeerTcpCsumPartial), with
// no pass over the payload.
int tso_headers(const uint8_t* pkt, size_t len, const VnetHdr& h, uint8_t* out, size_t out_cap, size_t headroom,
                TsoPlan* plan, int max_segs, bool partial);
// For a peer that takes partial TCP checksums: when pkt[0, len) is a whole
// IPv4 TCP packet (not a fragment, total length = len), its TCP checksum
// becomes the pseudo-header sum, whatever it was. False (nothing changed)
// for anything else, which keeps its own checksums.
bool leave_tcp_checksum_partial(uint8_t* pkt, size_t len);

// TcpCoalescer: receive-side coalescing, like Linux's GRO for IPv4/TCP, so
// that one TUN write carries up to 64 KB of one flow instead of one MSS.
//
// Use, per batch of received packets, in arrival order:
//
//   for each inner packet p:
//     if (!c.add(p, n)) {                 // does not extend the held packet
//       writev_tun(c.flush(&iov, &iovcnt) bytes in iov[0, iovcnt));
//       if (!c.add(p, n)) count a drop;   // only when n == 0 or n > 65535
//     }
//   at the end of the batch: the same writev of c.flush(), when > 0
//
// Buffer contract: the coalescer copies no payload. It keeps pointers into
// every added packet, so each must stay in place and unchanged until the
// next flush() (the worker's receive slots do: they are refilled only by the
// next batch, after the last flush). flush() returns iovecs over the
// coalescer's own header scratch and those packets, valid until the next
// add(). Not thread-safe: one coalescer per thread.
//
// An empty coalescer accepts any packet (TCP or not) of 1 to 65535 bytes.
// It may then hold further segments only when this first one, the head, is
// a "mergeable segment" (below) without PSH. A non-empty coalescer appends a
// packet only when all of these hold (each with its reason):
//   - it is a mergeable segment: IPv4 with IHL 5, total length = its length,
//     not a fragment (MF and offset 0), TCP with at least one payload byte,
//     flags exactly ACK or ACK|PSH. IP options are never merged (as in Linux:
//     some are per-packet); SYN/FIN/RST/URG/CWR/ECE segments carry meaning
//     per segment, and ECN signals must reach TCP at the right seq;
//   - same flow: addresses, protocol and ports equal the head's;
//   - in order: its seq is the next expected byte (the coalescer never
//     reorders or fills holes; a retransmission or a gap ends the packet);
//   - headers equal: ACK number, data offset, window, and all TCP option
//     bytes (timestamps included, as in Linux: TCP's RTT and PAWS logic sees
//     only the head's options); IP TOS (ECN CE marks must not be lost), TTL
//     and DF. The merged packet carries the head's headers, so anything that
//     differed would be lost;
//   - IP id: without DF, the head's id + the number of segments held (the
//     kernel's resegmentation regenerates ids that way, so ids survive);
//     with DF, any id (like Linux: ids of DF packets carry nothing);
//   - size: its payload is at most the head's payload (gso_size, the MSS);
//     a shorter one is appended last (the resegmented packet must split
//     back at the same boundaries); the IP total length stays <= 65535, and
//     at most kMaxCoalescedSegs segments are held;
//   - the packet is still open: the head was mergeable, and no PSH or short
//     segment has been appended;
//   - its IP header and TCP checksums are right, and the head's too (checked
//     when the second segment arrives): the merged packet goes to the kernel
//     as CHECKSUM_PARTIAL, which the kernel trusts, so a corrupt segment must
//     never be merged (it goes through alone; the kernel drops it);
//   - partial equals the head's. Packets added with partial (from a peer
//     that leaves TCP checksums partial, kPeerTcpCsumPartial) carry no
//     TCP checksum to check: the outer UDP checksum, which the kernel
//     verified, covered them. Their IP header checksum is still checked.
// A PSH segment is appended and sets PSH in the merged header, then closes
// the packet (the data is meant for the application now).
//
// flush() output, kVnetHdrLen + IP length bytes in order:
//   - one packet held: a zero vnet header (GSO_NONE, no flags) and the
//     packet's bytes untouched (its own checksums, which the kernel verifies);
//     for a whole TCP packet added with partial, the vnet header says
//     NEEDS_CSUM (csum_start = IHL, csum_offset = 16) instead;
//   - several: vnet header {flags NEEDS_CSUM, gso_type TCPV4, hdr_len = IP +
//     TCP header, gso_size = the head's payload, csum_start = 20 (the IP
//     header), csum_offset = 16}, the head's headers with IP total length
//     and IP header checksum fixed, PSH if one was appended, and the TCP
//     checksum field = the pseudo-header sum over the new length, folded
//     and not complemented (CHECKSUM_PARTIAL, as Linux's GRO leaves it);
//     then each segment's payload, in order.
constexpr int kMaxCoalescedSegs = 1023;  // IOV_MAX (1024) less the headers' iovec

class TcpCoalescer {
 public:
  TcpCoalescer() = default;
  TcpCoalescer(const TcpCoalescer&) = delete;
  TcpCoalescer& operator=(const TcpCoalescer&) = delete;
  // Appends (or, when empty, starts with) the IPv4 packet pkt[0, len);
  // partial: its TCP checksum, if it is TCP, is the pseudo-header sum only.
  // False when it cannot be appended: nothing changed; flush, then add again.
  bool add(const uint8_t* pkt, size_t len, bool partial);
  // Finalizes the held packet (see above): *iov, *iovcnt = what to write to
  // the TUN with one writev; returns its byte count, and empties the
  // coalescer. Returns 0 (*iov = nullptr, *iovcnt = 0) when empty.
  size_t flush(const iovec** iov, int* iovcnt);

 private:
  bool start(const uint8_t* pkt, size_t len, bool partial);
  bool head_checksum_ok() const;
  // The vnet header, then (several segments) the head's IP + TCP headers.
  uint8_t hdr_[kVnetHdrLen + 20 + 60] = {};
  // [0] hdr_; [1] the head (whole, or its payload once merged); [2..] appended payloads.
  iovec iov_[kMaxCoalescedSegs + 1] = {};
  const uint8_t* head_ = nullptr;
  size_t head_len_ = 0;
  size_t len_ = 0;  // IP bytes held
  int segs_ = 0;
  bool open_ = false;  // may more segments be appended?
  bool head_verified_ = false;
  bool psh_ = false;   // a PSH segment was appended
  bool partial_ = false;  // the head came with partial
  uint16_t head_csum_start_ = 0;  // partial: the head's IHL when it is a whole TCP packet, else 0
  uint16_t head_hdrs_ = 0;        // with head_csum_start_: its IP + TCP header bytes
  uint16_t thl_ = 0;  // TCP header length of the head
  uint16_t gso_size_ = 0;
  uint16_t head_id_ = 0;  // host order
  bool df_ = false;
  uint32_t next_seq_ = 0;  // host order
};

}  // namespace weft

#endif  // WEFT_OFFLOAD_H_
