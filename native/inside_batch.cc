// inside, per batch (TUN -> UDP): read up to kBatch packets (each maybe a
// 64 KB TSO super-packet with a virtio-net header) -> classify_inside ->
// a peer spoken to in WireGuard: inside_wireguard (wg_batch.cc); else
// plain packet: finish its checksum, write the VXLAN-GPE header in the
// headroom in front of it, queue it on the sending socket its flow hashes
// to; super-packet: split into segments (headers written, payload gathered
// from the super-packet) no longer than the path to the peer allows, sent
// as UDP GSO trains -> sendmmsg per socket. Unowned destinations and DF
// packets too long for the path get ICMP errors, within the budget.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker.h"
#include "inside.h"

namespace weft {

void Worker::inside_batch(const RouteTable& t) {
  // A slot: [headroom][vnet header?][packet][tailroom]; the packet starts
  // kHeadroom bytes in, so a VXLAN-GPE or WireGuard header fits in front of
  // it, and kWgTailroom is left for WireGuard's padding and tag.
  const size_t read_at = vnet ? kHeadroom - kVnetHdrLen : kHeadroom;
  const uint64_t now = coarse_now_ns();
  if (staged_n > 0) flush_staged(t, now);
  for (int i = 0; i < kBatch; i++) {
    uint8_t* slot = in_slab.get() + size_t(i) * kSlot;
    const ssize_t n = read(tun_fd, slot + read_at, kSlot - read_at - kWgTailroom);
    if (n < 0) {
      if (errno == EINTR) {
        i--;
        continue;
      }
      // EAGAIN: drained. Anything else lost one packet (EFAULT: longer than
      // the slot) or the device (which poll's revents then reports).
      if (errno != EAGAIN && errno != EWOULDBLOCK) counters.add(kInsideDropReadError);
      break;
    }
    size_t len = size_t(n);
    uint8_t* pkt = slot + read_at;
    VnetHdr h{};
    if (vnet) {
      if (!vnet_hdr_read(pkt, len, &h)) {
        counters.add(kInsideDropMalformed);
        continue;
      }
      pkt += kVnetHdrLen;
      len -= kVnetHdrLen;
    }
    inside_one(pkt, len, h, t, now);
  }
  flush_all();
}

void Worker::inside_one(uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, uint64_t now) {
  const int32_t peer = classify_inside(pkt, len, t, counters);
  if (peer == kInsideDrop) return;
  if (peer == kInsideUnreachable) {
    send_icmp_error(pkt, len, kIcmpNetUnreachable, 0, now);
    return;
  }
  const size_t limit = inner_limit(t, peer, now);
  if ((t.peer_flags[size_t(peer)] & kPeerWireguard) != 0) {
    inside_wireguard(pkt, len, h, t, peer, limit, now);
    return;
  }
  const int sock = int(flow_hash(pkt, len) % kSendSockets);
  if (vnet && h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    flush(tx[sock]);  // keep the flow's order: earlier packets go first
    send_tso(pkt, len, h, t, peer, sock, limit, now);
    return;
  }
  if (!ready_to_send(pkt, len, h, t, peer, limit, now)) return;
  gpe_write(pkt - kGpeHeaderLen, vni);
  queue_send(tx[sock], pkt - kGpeHeaderLen, len + kGpeHeaderLen, t.peer_ip[size_t(peer)], t.peer_port[size_t(peer)], uint32_t(len), 1, 0);
}

void Worker::queue_send(SendQueue& q, uint8_t* data, size_t len, uint32_t ip, uint16_t port, uint32_t inner_bytes, uint16_t packets,
                        uint16_t gso_size) {
  if (q.n == kBatch) flush(q);
  const int m = q.n++;
  q.iov[m] = {data, len};
  q.inner_bytes[m] = inner_bytes;
  q.packets[m] = packets;
  fill_msg(&q.msgs[m], &q.addr[m], ip, port, &q.iov[m], 1, q.ctrl[m], gso_size);
}

void Worker::flush(SendQueue& q) {
  send_all(q.fd, q.msgs, q.n, q.packets, q.inner_bytes);
  q.n = 0;
}

// sendmmsg until every message went or failed; counts inner packets and bytes.
void Worker::send_all(int fd, mmsghdr* msgs, int n, const uint16_t* packets, const uint32_t* bytes) {
  int done = 0;
  while (done < n) {
    const int r = sendmmsg(fd, msgs + done, unsigned(n - done), 0);
    if (r > 0) {
      for (int m = done; m < done + r; m++) {
        counters.add(kInsidePackets, packets[m]);
        counters.add(kInsideBytes, bytes[m]);
      }
      done += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // The first unsent message failed (a full buffer past the send timeout,
    // EMSGSIZE, a down route...): count it and go on with the rest.
    counters.add(kInsideDropSendError, packets[done]);
    done++;
  }
}

void fill_msg(mmsghdr* m, sockaddr_in* addr, uint32_t ip, uint16_t port, iovec* iov, size_t iovlen, char* ctrl, uint16_t gso_size) {
  addr->sin_family = AF_INET;
  addr->sin_port = htons(port);
  addr->sin_addr.s_addr = htonl(ip);
  msghdr& mh = m->msg_hdr;
  mh.msg_name = addr;
  mh.msg_namelen = sizeof(sockaddr_in);
  mh.msg_iov = iov;
  mh.msg_iovlen = iovlen;
  mh.msg_flags = 0;
  if (gso_size == 0) {
    mh.msg_control = nullptr;
    mh.msg_controllen = 0;
    return;
  }
  mh.msg_control = ctrl;
  mh.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
  cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(cm), &gso_size, sizeof(gso_size));
}

bool Worker::ready_to_send(uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, size_t limit, uint64_t now) {
  // Too long for the path: with DF the sender must learn the MTU (as a
  // router would tell it); without, the kernel fragments the datagram.
  if (len > limit && (pkt[6] & 0x40) != 0) {
    counters.add(kInsideDropTooBig);
    send_icmp_error(pkt, len, kIcmpFragNeeded, uint16_t(limit), now);
    return false;
  }
  // A peer that takes partial TCP checksums gets every whole TCP packet
  // so (a fully summed one too: the peer cannot tell them apart); the
  // rest, and every packet to other peers, goes fully summed. (With
  // WireGuard too: Poly1305 covers every byte either way.)
  const bool partial = vnet && (t.peer_flags[size_t(peer)] & kPeerTcpCsumPartial) != 0 && leave_tcp_checksum_partial(pkt, len);
  if (!partial && vnet && (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 && !complete_checksum(pkt, len, h.csum_start, h.csum_offset)) {
    counters.add(kInsideDropMalformed);
    return false;
  }
  return true;
}

size_t Worker::inner_limit(const RouteTable& t, int32_t peer, uint64_t now_ns) {
  const size_t mtu = pmtu.get(t.peer_ip[size_t(peer)], now_ns);
  const size_t overhead = (t.peer_flags[size_t(peer)] & kPeerWireguard) != 0 ? kWgOverhead : kEncapOverhead;
  return mtu > overhead ? mtu - overhead : SIZE_MAX;
}

int Worker::plan_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, size_t headroom, bool partial, size_t limit, uint64_t now_ns,
                     TsoPlan* plan) {
  int segs = tso_headers(pkt, len, h, seg_hdrs, sizeof(seg_hdrs), headroom, plan, kMaxSegs, partial);
  if (segs <= 0) {
    counters.add(kInsideDropMalformed);
    return -1;
  }
  // Segments too long for the path: cut them shorter (the sender's TCP sees
  // nothing but ordinary segments). When that takes more than kMaxSegs,
  // tell the sender the path MTU instead, so its next super-packets fit.
  if (plan->hdrs + plan->mss > limit) {
    VnetHdr shorter = h;
    shorter.gso_size = uint16_t(limit > plan->hdrs ? limit - plan->hdrs : 0);
    segs = shorter.gso_size > 0 ? tso_headers(pkt, len, shorter, seg_hdrs, sizeof(seg_hdrs), headroom, plan, kMaxSegs, partial) : -1;
    if (segs <= 0) {
      counters.add(kInsideDropTooBig);
      send_icmp_error(pkt, len, kIcmpFragNeeded, uint16_t(limit), now_ns);
      return -1;
    }
  }
  return segs;
}

void Worker::send_tso(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, int sock, size_t limit,
                      uint64_t now_ns) {
  TsoPlan plan;
  const bool partial = (t.peer_flags[size_t(peer)] & kPeerTcpCsumPartial) != 0;
  const int segs = plan_tso(pkt, len, h, kGpeHeaderLen, partial, limit, now_ns, &plan);
  if (segs < 0) return;
  // Each datagram gathers [VXLAN-GPE + segment headers] from seg_hdrs and
  // the segment's payload straight from the super-packet: no payload copy.
  // Trains of equal datagrams (the last may be shorter) go in one message
  // with UDP_SEGMENT; without GSO, one message per datagram.
  const size_t stride = plan.hdr_stride + plan.mss;  // one full datagram
  const int fit = int(kGsoTrainMax / stride);
  // fit is 0 only for a datagram over kGsoTrainMax (a huge --mtu): send those one by one.
  const int per_train = !gso || fit < 1 ? 1 : fit < kGsoTrainSegs ? fit : kGsoTrainSegs;
  sockaddr_in& addr = tx[sock].addr[0];  // the queue is empty: flushed before us
  int msgs = 0;
  size_t v = 0;
  for (int first = 0; first < segs; first += per_train) {
    const int count = segs - first < per_train ? segs - first : per_train;
    iovec* iov = &tso_iov[v];
    uint32_t inner = 0;
    for (int s = first; s < first + count; s++) {
      uint8_t* hdr = seg_hdrs + size_t(s) * plan.hdr_stride;
      const size_t payload = s + 1 < segs ? plan.mss : plan.last_payload;
      gpe_write(hdr, vni);
      tso_iov[v++] = {hdr, plan.hdr_stride};
      tso_iov[v++] = {const_cast<uint8_t*>(pkt + plan.hdrs + size_t(s) * plan.mss), payload};
      inner += uint32_t(plan.hdrs + payload);
    }
    tso_packets[msgs] = uint16_t(count);
    tso_bytes[msgs] = inner;
    fill_msg(&tso_msgs[msgs], &addr, t.peer_ip[size_t(peer)], t.peer_port[size_t(peer)], iov, size_t(2 * count), tso_ctrl[msgs],
             count > 1 ? uint16_t(stride) : 0);
    msgs++;
  }
  send_all(tx[sock].fd, tso_msgs, msgs, tso_packets, tso_bytes);
}

void Worker::send_icmp_error(const uint8_t* pkt, size_t len, uint8_t code, uint16_t mtu, uint64_t now_ns) {
  if (!icmp_budget.take(now_ns)) {
    counters.add(kInsideIcmpRateLimited);
    return;
  }
  memset(icmp, 0, kVnetHdrLen);  // a plain vnet header: no GSO, checksums complete
  uint8_t* out = vnet ? icmp + kVnetHdrLen : icmp;
  const size_t n = write_icmp_unreachable(out, pkt, len, tun_addr, code, mtu);
  if (write(tun_fd, icmp, n + (vnet ? kVnetHdrLen : 0)) > 0) counters.add(kInsideIcmpUnreachable);
}

}  // namespace weft
