// outside, per batch (UDP -> TUN): recvmmsg up to kBatch buffers (each
// maybe a UDP GRO train of equal datagrams) -> accept_train (outside.h) per
// datagram -> TCP coalescer -> one TUN writev per super-packet, its payloads
// gathered from the receive slots (or one write per packet without vnet
// headers). The coalescer is flushed before the slots are reused.
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "worker.h"

namespace weft {

int Worker::receive(int fd) {
  for (int i = 0; i < kBatch; i++) {
    riov[i] = {out_slab.get() + size_t(i) * kSlot, kSlot};
    msghdr& mh = rmsgs[i].msg_hdr;
    mh.msg_name = &raddr[i];
    mh.msg_namelen = sizeof(sockaddr_in);
    mh.msg_iov = &riov[i];
    mh.msg_iovlen = 1;
    mh.msg_control = rctrl[i];
    mh.msg_controllen = sizeof(rctrl[i]);
    mh.msg_flags = 0;
  }
  const int n = recvmmsg(fd, rmsgs, kBatch, MSG_DONTWAIT, nullptr);
  return n > 0 ? n : 0;  // EAGAIN, or an error poll will report again
}

size_t Worker::gro_segment(int i) const {
  size_t seg = rmsgs[i].msg_len;
  msghdr& mh = const_cast<msghdr&>(rmsgs[i].msg_hdr);
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm != nullptr; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
      int gso_size;
      memcpy(&gso_size, CMSG_DATA(cm), sizeof(gso_size));
      if (gso_size > 0) seg = size_t(gso_size);
    }
  }
  return seg;
}

void Worker::outside_batch(const RouteTable& t) {
  const int n = receive(rx_fd);
  for (int i = 0; i < n; i++) {
    const uint8_t* buf = out_slab.get() + size_t(i) * kSlot;
    const size_t len = rmsgs[i].msg_len;
    const uint32_t src = ntohl(raddr[i].sin_addr.s_addr);
    // From a peer that leaves TCP checksums partial toward us (we list the feature only with vnet headers).
    const bool partial = vnet && (t.flags_of_sender(src) & kPeerTcpCsumPartial) != 0;
    accept_train(buf, len, gro_segment(i), src, t, self, vni, counters, [this, partial](const uint8_t* inner, size_t n) { deliver(inner, n, partial); });
  }
  flush_coalescer();
}

void Worker::deliver(const uint8_t* inner, size_t len, bool partial) {
  if (!vnet) {
    if (write(tun_fd, inner, len) == ssize_t(len)) {
      counters.add(kOutsidePackets);
      counters.add(kOutsideBytes, len);
    } else {
      counters.add(kOutsideDropTunWrite);
    }
    return;
  }
  if (!co.add(inner, len, partial)) {
    flush_coalescer();
    co.add(inner, len, partial);  // an empty coalescer takes any packet
  }
  co_packets++;
  co_bytes += uint32_t(len);
}

void Worker::flush_coalescer() {
  if (!vnet || co_packets == 0) return;
  const iovec* iov = nullptr;
  int iovcnt = 0;
  const size_t n = co.flush(&iov, &iovcnt);
  if (n > 0 && writev(tun_fd, iov, iovcnt) == ssize_t(n)) {
    counters.add(kOutsidePackets, co_packets);
    counters.add(kOutsideBytes, co_bytes);
  } else {
    counters.add(kOutsideDropTunWrite, co_packets);
  }
  co_packets = 0;
  co_bytes = 0;
}

}  // namespace weft
