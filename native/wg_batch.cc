// WireGuard in a worker: the inside step for a peer spoken to in WireGuard
// (seal on its session, or stage until the sessions in JS complete a
// handshake), and the WireGuard socket's receive batch.
//
//   inside:  packet -> session to send on? -> no: stage it, flag the peer for JS
//                                          -> plain packet: sealed in place in its read slot
//                                          -> super-packet: each segment sealed into a UDP GSO
//                                             train, the cipher's one read of the payload being
//                                             the copy -> sendmsg on the WireGuard socket
//   outside: recvmmsg (UDP GRO trains) -> accept_wireguard per datagram (wg_outside.h):
//            data decrypted in place -> TCP coalescer -> TUN, as VXLAN-GPE's;
//            handshake messages -> gathered -> one push to JS's queue per batch
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "wg_outside.h"
#include "worker.h"

namespace weft {

void Worker::inside_wireguard(uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, size_t limit,
                              uint64_t now) {
  Keypair* k = session(t, peer, now);
  if (k == nullptr) {
    stage(pkt, len, h, now);
    want_session(t, peer);
    return;
  }
  // Padding stops at the TUN's MTU, and at a narrower path's inner limit: the datagram fits the path.
  const size_t pad_limit = limit < t.pad_limit ? limit : t.pad_limit;
  if (vnet && h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    flush(wg_tx);  // keep the flow's order: earlier packets go first
    send_tso_wireguard(pkt, len, h, t, peer, *k, limit, pad_limit, now);
    return;
  }
  if (!ready_to_send(pkt, len, h, t, peer, limit, now)) return;
  const uint64_t counter = k->send_counter.fetch_add(1, std::memory_order_relaxed);
  if (counter >= kRejectAfterMessages) {
    counters.add(kInsideDropNoSession);
    want_session(t, peer);
    return;
  }
  const size_t n = wg_seal_in_place(pkt, len, k->seal[index], k->remote_index, counter, pad_limit);
  if (n == 0) {
    counters.add(kInsideDropSendError);
    return;
  }
  Keypair::stamp(k->data_tx_ns, now);
  Keypair::stamp(k->any_tx_ns, now);
  queue_send(wg_tx, pkt - kWgHeaderLen, n, t.peer_ip[size_t(peer)], t.peer_wg_port[size_t(peer)], uint32_t(len), 1, 0);
}

void Worker::send_tso_wireguard(const uint8_t* pkt, size_t len, const VnetHdr& h, const RouteTable& t, int32_t peer, Keypair& k,
                                size_t limit, size_t pad_limit, uint64_t now) {
  TsoPlan plan;
  const bool partial = (t.peer_flags[size_t(peer)] & kPeerTcpCsumPartial) != 0;
  const int segs = plan_tso(pkt, len, h, kWgHeaderLen, partial, limit, now, &plan);
  if (segs < 0) return;
  const uint64_t first = k.send_counter.fetch_add(uint64_t(segs), std::memory_order_relaxed);
  if (first >= kRejectAfterMessages - uint64_t(segs)) {
    counters.add(kInsideDropNoSession, uint64_t(segs));
    want_session(t, peer);
    return;
  }
  // Full segments seal to equal datagrams: trains of them (the last one may
  // be shorter) go in one sendmsg with UDP_SEGMENT. The cipher reads each
  // segment's headers (seg_hdrs) and payload (the super-packet) and writes
  // the ciphertext into the train: the one copy, fused with the encryption.
  Aead& aead = k.seal[index];
  const size_t full = kWgHeaderLen + wg_padded(plan.hdrs + plan.mss, pad_limit) + kWgTagLen;
  const int fit = int(kGsoTrainMax / full);
  const int per_train = !gso || fit < 1 ? 1 : fit < kGsoTrainSegs ? fit : kGsoTrainSegs;
  uint8_t* out = wg_train.get();
  for (int s0 = 0; s0 < segs; s0 += per_train) {
    const int count = segs - s0 < per_train ? segs - s0 : per_train;
    size_t off = 0;
    uint32_t inner = 0;
    for (int s = s0; s < s0 + count; s++) {
      const size_t payload = s + 1 < segs ? plan.mss : plan.last_payload;
      const size_t seg_len = plan.hdrs + payload;
      const WgPiece pieces[2] = {{seg_hdrs + size_t(s) * plan.hdr_stride + kWgHeaderLen, plan.hdrs},
                                 {pkt + plan.hdrs + size_t(s) * plan.mss, payload}};
      const size_t n = wg_seal(out + off, pieces, 2, aead, k.remote_index, first + uint64_t(s), pad_limit);
      if (n == 0) {
        counters.add(kInsideDropSendError, uint64_t(segs - s));
        return;
      }
      off += n;
      inner += uint32_t(seg_len);
    }
    iovec iov = {out, off};
    tso_packets[0] = uint16_t(count);
    tso_bytes[0] = inner;
    fill_msg(&tso_msgs[0], &wg_tx.addr[0], t.peer_ip[size_t(peer)], t.peer_wg_port[size_t(peer)], &iov, 1, tso_ctrl[0],
             count > 1 ? uint16_t(full) : 0);
    send_all(wg_tx.fd, tso_msgs, 1, tso_packets, tso_bytes);
  }
  Keypair::stamp(k.data_tx_ns, now);
  Keypair::stamp(k.any_tx_ns, now);
}

void Worker::stage(const uint8_t* pkt, size_t len, const VnetHdr& h, uint64_t now) {
  int slot;
  if (stage_free_n > 0) {
    slot = stage_free[--stage_free_n];
  } else {
    // Full: the oldest goes, as WireGuard's staged queue drops its head.
    counters.add(kInsideDropNoSession);
    slot = staged[0].slot;
    memmove(staged, staged + 1, size_t(staged_n - 1) * sizeof(StagedPacket));
    staged_n--;
  }
  memcpy(stage_slab.get() + size_t(slot) * kSlot + kHeadroom, pkt, len);
  staged[staged_n++] = {slot, uint32_t(len), h, now};
}

void Worker::flush_staged(const RouteTable& t, uint64_t now) {
  int kept = 0;
  int freed[kStaged];
  int freed_n = 0;
  for (int i = 0; i < staged_n; i++) {
    const StagedPacket p = staged[i];
    uint8_t* pkt = stage_slab.get() + size_t(p.slot) * kSlot + kHeadroom;
    if (now - p.at_ns >= kStagedMaxNs) {
      counters.add(kInsideDropNoSession);
      freed[freed_n++] = p.slot;
      continue;
    }
    // Classified once already: a well-formed IPv4 packet. Its node may be gone, speak VXLAN-GPE now, or have a session.
    const int32_t peer = t.lookup(ip_dst(pkt));
    if (peer != kNoPeer && (t.peer_flags[size_t(peer)] & kPeerWireguard) != 0 && session(t, peer, now) == nullptr) {
      // Flagged again on this table: a flag raised on an older one is lost when
      // that table was replaced before JS took it (JS reads the current one).
      want_session(t, peer);
      staged[kept++] = p;
      continue;
    }
    inside_one(pkt, p.len, p.h, t, now);
    freed[freed_n++] = p.slot;
  }
  staged_n = kept;
  // The sends may still point into the slots: out before the slots are reused.
  flush_all();
  for (int i = 0; i < freed_n; i++) stage_free[stage_free_n++] = freed[i];
}

Keypair* Worker::session(const RouteTable& t, int32_t peer, uint64_t now) const {
  return wg_tx.fd >= 0 ? t.wg.sending(peer, now) : nullptr;
}

void Worker::want_session(const RouteTable& t, int32_t peer) {
  if (t.want_session[size_t(peer)].exchange(1, std::memory_order_relaxed) == 0) engine->wg_notify();
}

void Worker::wireguard_batch(const RouteTable& t, int fd) {
  // Re-keyed when the table's key differs from the one it holds (retried next batch if OpenSSL refused).
  if (memcmp(mac1_key, t.mac1_key, sizeof(mac1_key)) != 0 && mac1.set_key(t.mac1_key)) memcpy(mac1_key, t.mac1_key, sizeof(mac1_key));
  const int n = receive(fd);
  const uint64_t now = coarse_now_ns();
  for (int i = 0; i < n; i++) {
    uint8_t* buf = out_slab.get() + size_t(i) * kSlot;
    const uint32_t src = ntohl(raddr[i].sin_addr.s_addr);
    const bool partial = vnet && (t.flags_of_sender(src) & kPeerTcpCsumPartial) != 0;
    for_each_datagram(buf, size_t(rmsgs[i].msg_len), gro_segment(i), [&](uint8_t* dg, size_t len) {
      const uint8_t* inner = nullptr;
      size_t inner_len = 0;
      switch (accept_wireguard(dg, len, src, t, self, mac1, index, now, counters, &inner, &inner_len)) {
        case WgVerdict::kData:
          deliver(inner, inner_len, partial);
          break;
        case WgVerdict::kHandshake:
          if (handshakes_n == kHandshakesPerPush) push_handshakes();
          handshakes[handshakes_n] = {src, uint16_t(len), {}};
          memcpy(handshakes[handshakes_n].msg, dg, len);
          handshakes_n++;
          break;
        case WgVerdict::kKeepalive:
        case WgVerdict::kDrop:
          break;
      }
    });
  }
  flush_coalescer();
  push_handshakes();
}

void Worker::push_handshakes() {
  if (handshakes_n == 0) return;
  const size_t dropped = engine->wg_queue(handshakes, size_t(handshakes_n));
  if (dropped > 0) counters.add(kOutsideDropWgQueueFull, dropped);
  handshakes_n = 0;
  engine->wg_notify();
}

}  // namespace weft
