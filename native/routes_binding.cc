// JS route tables to RouteTable: see routes_binding.h. Argument unpacking
// only; the table is built and checked by routes.cc.
#include "routes_binding.h"

#include <string.h>

#include "napi_util.h"

namespace weft {

std::unique_ptr<RouteTable> routes_arg(napi_env env, napi_value obj) {
  double net_base, net_len, subnet_len;
  bool plaintext_refused;
  napi_value v;
  void *slots, *ips, *ports, *wg_ports, *flags;
  size_t slot_count, ip_count, port_count, wg_port_count, flag_count;
  if (!typed_arg(env, obj, napi_object, "routes", "an object") || !int_prop(env, obj, "netBase", 0, 4294967295.0, &net_base) ||
      !int_prop(env, obj, "netLen", 0, 32, &net_len) || !int_prop(env, obj, "subnetLen", 1, 32, &subnet_len) ||
      !get_prop(env, obj, "slots", &v) || !typed_array_arg(env, v, napi_int32_array, "routes.slots", "Int32Array", &slots, &slot_count) ||
      !get_prop(env, obj, "peerIp", &v) || !typed_array_arg(env, v, napi_uint32_array, "routes.peerIp", "Uint32Array", &ips, &ip_count) ||
      !get_prop(env, obj, "peerPort", &v) ||
      !typed_array_arg(env, v, napi_uint16_array, "routes.peerPort", "Uint16Array", &ports, &port_count) ||
      !get_prop(env, obj, "peerWgPort", &v) ||
      !typed_array_arg(env, v, napi_uint16_array, "routes.peerWgPort", "Uint16Array", &wg_ports, &wg_port_count) ||
      !bool_prop(env, obj, "plaintextRefused", &plaintext_refused) || !get_prop(env, obj, "peerFlags", &v) ||
      !typed_array_arg(env, v, napi_uint8_array, "routes.peerFlags", "Uint8Array", &flags, &flag_count)) {
    return nullptr;
  }
  if (ip_count != port_count || ip_count != flag_count || ip_count != wg_port_count) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "routes.peerIp, routes.peerPort, routes.peerWgPort and routes.peerFlags differ in length");
    return nullptr;
  }
  auto t = build_route_table(uint32_t(net_base), int(net_len), int(subnet_len), static_cast<int32_t*>(slots), slot_count,
                             static_cast<uint32_t*>(ips), static_cast<uint16_t*>(ports), static_cast<uint16_t*>(wg_ports),
                             static_cast<uint8_t*>(flags), ip_count, plaintext_refused);
  if (!t) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "inconsistent route table (slot count or peer index out of range)");
  return t;
}

bool wg_key_arg(napi_env env, napi_value v, const char* what, uint8_t** key) {
  size_t len = 0;
  if (!buffer_arg(env, v, what, key, &len)) return false;
  if (len != kWgKeyLen) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "a WireGuard key is 32 bytes");
    return false;
  }
  return true;
}

bool wg_sessions_arg(napi_env env, napi_value wg, const std::function<std::shared_ptr<Keypair>(uint32_t)>& keypair, RouteTable* t) {
  napi_value v;
  void *key, *slots;
  size_t key_len, slot_count;
  double pad_limit;
  if (!typed_arg(env, wg, napi_object, "wireguard", "an object") || !get_prop(env, wg, "mac1Key", &v) ||
      !typed_array_arg(env, v, napi_uint8_array, "wireguard.mac1Key", "Uint8Array", &key, &key_len) ||
      !int_prop(env, wg, "padLimit", 0, 65535, &pad_limit) || !get_prop(env, wg, "slots", &v) ||
      !typed_array_arg(env, v, napi_uint32_array, "wireguard.slots", "Uint32Array", &slots, &slot_count)) {
    return false;
  }
  const size_t peers = t->peer_ip.size();
  if (key_len != sizeof(t->mac1_key) || slot_count != 3 * peers) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "wireguard.mac1Key must be 32 bytes and wireguard.slots 3 per peer");
    return false;
  }
  memcpy(t->mac1_key, key, sizeof(t->mac1_key));
  t->pad_limit = uint16_t(pad_limit);
  t->wg.peer_next.assign(peers, nullptr);
  t->wg.peer_current.assign(peers, nullptr);
  t->wg.reserve(slot_count);
  const uint32_t* s = static_cast<const uint32_t*>(slots);
  for (size_t p = 0; p < peers; p++) {
    for (size_t k = 0; k < 3; k++) {
      const uint32_t index = s[3 * p + k];
      std::shared_ptr<Keypair> kp = index == 0 || t->wg.find(index) != nullptr ? nullptr : keypair(index);
      if (!kp) continue;
      if (k == 0) t->wg.peer_next[p] = kp.get();
      if (k == 1) t->wg.peer_current[p] = kp.get();
      (void)t->wg.index(kp);  // room for every slot was reserved
    }
  }
  return true;
}

SelfSubnet self_arg(double base, double len) {
  const uint32_t mask = len == 0 ? 0 : uint32_t(0xffffffffu << (32 - int(len)));
  return {uint32_t(base) & mask, mask};
}

}  // namespace weft
