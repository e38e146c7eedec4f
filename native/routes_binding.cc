// JS route tables to RouteTable: see routes_binding.h. Argument unpacking
// only; the table is built and checked by routes.cc.
#include "routes_binding.h"

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

SelfSubnet self_arg(double base, double len) {
  const uint32_t mask = len == 0 ? 0 : uint32_t(0xffffffffu << (32 - int(len)));
  return {uint32_t(base) & mask, mask};
}

}  // namespace weft
