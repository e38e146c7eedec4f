// The test addon's in-process entry points to the native engine's WireGuard
// per-packet code, no I/O: wgSeal (a transport message as the workers seal
// one) and wgAccept (received buffers split into datagrams, each through
// accept_wireguard, as a worker takes a batch), for the encrypted
// differential test against the TypeScript (src/wireguard/transport.ts,
// src/dataplane/wireguard_outside.ts).
// Argument unpacking only; allocates per call.
#include "wg_test_binding.h"

#include <string.h>

#include <memory>
#include <unordered_map>
#include <vector>

#include "engine_test_binding.h"
#include "napi_util.h"
#include "routes_binding.h"
#include "wg_outside.h"
#include "wg_transport.h"
#include "worker.h"

namespace weft {
namespace {

// wgSeal(key, receiverIndex, counter, packet, padLimit): the transport message wg_seal_in_place makes of packet,
// checked equal to what wg_seal makes of it gathered from three pieces (as a super-packet's segments are).
napi_value js_wg_seal(napi_env env, napi_callback_info info) {
  napi_value argv[5], result;
  uint8_t *key, *pkt;
  size_t len;
  double receiver, counter, pad;
  if (!get_args(env, info, 5, argv, "wgSeal(key, receiverIndex, counter, packet, padLimit)") || !wg_key_arg(env, argv[0], "key", &key) ||
      !integer_arg(env, argv[1], "receiverIndex", 0, 4294967295.0, &receiver) || !integer_arg(env, argv[2], "counter", 0, 9007199254740991.0, &counter) ||
      !buffer_arg(env, argv[3], "packet", &pkt, &len) || !integer_arg(env, argv[4], "padLimit", 0, 65535, &pad)) {
    return throw_last_napi_error(env);
  }
  if (len > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "packet must be at most 65535 bytes");
    return nullptr;
  }
  Aead aead;
  std::vector<uint8_t> buf(kWgHeaderLen + len + kWgTailroom), gathered(buf.size());
  memcpy(buf.data() + kWgHeaderLen, pkt, len);
  const WgPiece pieces[3] = {{pkt, len / 3}, {pkt + len / 3, len * 2 / 3 - len / 3}, {pkt + len * 2 / 3, len - len * 2 / 3}};
  const bool keyed = aead.init(key, true);
  const size_t n = keyed ? wg_seal_in_place(buf.data() + kWgHeaderLen, len, aead, uint32_t(receiver), uint64_t(counter), size_t(pad)) : 0;
  const size_t m = keyed ? wg_seal(gathered.data(), pieces, 3, aead, uint32_t(receiver), uint64_t(counter), size_t(pad)) : 0;
  void* data;
  if (n == 0 || m == 0) {
    napi_throw_error(env, "ERR_WEFT_CRYPTO", "sealing failed");
    return nullptr;
  }
  if (m != n || memcmp(gathered.data(), buf.data(), n) != 0) {
    napi_throw_error(env, "ERR_WEFT_SEAL", "sealing in pieces made other bytes than sealing in place");
    return nullptr;
  }
  if (napi_create_buffer_copy(env, n, buf.data(), &data, &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// The keypairs of wgAccept's `wireguard.keypairs`: [{ localIndex, remoteIndex, sendKey, recvKey, initiator, peerIp, peerPort, createdAgoMs }].
bool keypairs_arg(napi_env env, napi_value list, uint64_t now_ns, std::unordered_map<uint32_t, std::shared_ptr<Keypair>>* out) {
  uint32_t n = 0;
  if (napi_get_array_length(env, list, &n) != napi_ok) return false;
  for (uint32_t i = 0; i < n; i++) {
    napi_value o, v;
    double local, remote, ip, port, ago;
    uint8_t *send, *recv;
    bool initiator;
    if (napi_get_element(env, list, i, &o) != napi_ok || !int_prop(env, o, "localIndex", 1, 4294967295.0, &local) ||
        !int_prop(env, o, "remoteIndex", 0, 4294967295.0, &remote) || !get_prop(env, o, "sendKey", &v) || !wg_key_arg(env, v, "sendKey", &send) ||
        !get_prop(env, o, "recvKey", &v) || !wg_key_arg(env, v, "recvKey", &recv) || !bool_prop(env, o, "initiator", &initiator) ||
        !int_prop(env, o, "peerIp", 0, 4294967295.0, &ip) || !int_prop(env, o, "peerPort", 0, 65535, &port) ||
        !int_prop(env, o, "createdAgoMs", 0, 1e9, &ago)) {
      return false;
    }
    auto k = make_keypair(uint32_t(local), uint32_t(remote), send, recv, initiator, uint32_t(ip), uint16_t(port), 1, now_ns - uint64_t(ago) * 1000000u);
    if (!k) {
      napi_throw_error(env, "ERR_WEFT_CRYPTO", "keypair failed");
      return false;
    }
    (*out)[uint32_t(local)] = std::move(k);
  }
  return true;
}

// wgAccept(routes, wireguard { mac1Key, padLimit, slots, keypairs }, self {base, len}, buffers: Buffer[], outerSrc: Uint32Array, counters,
// segments?: Uint32Array): each received buffer split into datagrams as a worker splits it (segments[i] its GRO segment size; absent
// or 0: one datagram), per datagram [verdict, inner length]: verdict 0 dropped, 1 a handshake message for JS, 2 a keepalive, 3 data.
// The datagrams are decrypted in place; one replay window per keypair across the call.
napi_value js_wg_accept(napi_env env, napi_callback_info info) {
  napi_value argv[7], keypairs_v;
  void *counters, *segments = nullptr;
  size_t counter_len, segment_len = 0;
  napi_valuetype segments_type;
  PacketBatch b;
  if (!get_some_args(env, info, 6, 7, argv, "wgAccept(routes, wireguard, self, buffers, outerSrc, counters, segments?)") ||
      !typed_array_arg(env, argv[5], napi_biguint64_array, "counters", "BigUint64Array", &counters, &counter_len) ||
      !get_prop(env, argv[1], "keypairs", &keypairs_v) || napi_typeof(env, argv[6], &segments_type) != napi_ok ||
      (segments_type != napi_undefined && !typed_array_arg(env, argv[6], napi_uint32_array, "segments", "Uint32Array", &segments, &segment_len))) {
    return throw_last_napi_error(env);
  }
  if (!batch_args(env, argv[0], argv[2], argv[3], argv[4], false, &b)) return nullptr;
  const size_t count = b.packets.size();
  if (counter_len != kCounterCount || (segments_type != napi_undefined && segment_len < count)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "segments needs one size per buffer, counters one block");
    return nullptr;
  }
  RouteTable* t = b.table.get();
  const uint64_t now = coarse_now_ns();
  std::unordered_map<uint32_t, std::shared_ptr<Keypair>> keypairs;
  if (!keypairs_arg(env, keypairs_v, now, &keypairs) ||
      !wg_sessions_arg(env, argv[1], [&keypairs](uint32_t i) { auto it = keypairs.find(i); return it == keypairs.end() ? nullptr : it->second; }, t)) {
    return nullptr;
  }
  Mac1 mac1;
  if (!mac1.set_key(t->mac1_key)) {
    napi_throw_error(env, "ERR_WEFT_CRYPTO", "mac1 key refused");
    return nullptr;
  }
  Counters c(static_cast<uint64_t*>(counters));
  std::vector<int32_t> verdicts;
  for (size_t i = 0; i < count; i++) {
    const size_t seg = segments == nullptr ? 0 : static_cast<uint32_t*>(segments)[i];
    for_each_datagram(b.packets[i], b.lengths[i], seg, [&](uint8_t* dg, size_t dlen) {
      const uint8_t* inner = nullptr;
      size_t inner_len = 0;
      const WgVerdict v = accept_wireguard(dg, dlen, b.outer_src[i], *t, b.self, mac1, 0, now, c, &inner, &inner_len);
      verdicts.push_back(v == WgVerdict::kDrop ? 0 : v == WgVerdict::kHandshake ? 1 : v == WgVerdict::kKeepalive ? 2 : 3);
      verdicts.push_back(int32_t(inner_len));
    });
  }
  napi_value ab, out;
  void* out_data;
  if (napi_create_arraybuffer(env, verdicts.size() * 4, &out_data, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, verdicts.size(), ab, 0, &out) != napi_ok) {
    return throw_last_napi_error(env);
  }
  if (!verdicts.empty()) memcpy(out_data, verdicts.data(), verdicts.size() * 4);
  return out;
}

}  // namespace

napi_status init_wg_test_exports(napi_env env, napi_value exports) {
  return set_function(env, exports, "wgSeal", js_wg_seal) && set_function(env, exports, "wgAccept", js_wg_accept) ? napi_ok : napi_generic_failure;
}

}  // namespace weft
