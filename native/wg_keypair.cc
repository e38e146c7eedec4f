// Keypairs: see wg_keypair.h.
#include "wg_keypair.h"

#include <new>

namespace weft {

std::shared_ptr<Keypair> make_keypair(uint32_t local_index, uint32_t remote_index, const uint8_t* send_key, const uint8_t* recv_key,
                                      bool initiator, uint32_t peer_ip, uint16_t peer_port, int workers, uint64_t now_ns) {
  std::shared_ptr<Keypair> k(new (std::nothrow) Keypair());
  if (!k) return nullptr;
  k->local_index = local_index;
  k->remote_index = remote_index;
  k->peer_ip = peer_ip;
  k->peer_port = peer_port;
  k->created_ns = now_ns;
  k->confirmed.store(initiator, std::memory_order_relaxed);
  k->contexts = workers + 1;
  k->seal.reset(new (std::nothrow) Aead[size_t(k->contexts)]);
  k->open.reset(new (std::nothrow) Aead[size_t(k->contexts)]);
  if (!k->seal || !k->open) return nullptr;
  for (int i = 0; i < k->contexts; i++) {
    if (!k->seal[i].init(send_key, true) || !k->open[i].init(recv_key, false)) return nullptr;
  }
  return k;
}

}  // namespace weft
