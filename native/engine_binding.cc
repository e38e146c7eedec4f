// Node-API surface of the native engine: argument unpacking only. The
// engine's calls run at control-plane rate (start, a whole route table,
// stop); counters are read by JS straight from the BigUint64Array it handed
// over. Also the in-process entry points used by differential tests and the
// encapsulation microbenchmark, which run the per-packet code without I/O.
#include <errno.h>
#include <time.h>

#include <memory>
#include <new>
#include <vector>

#include "counters.h"
#include "dataplane.h"
#include "icmp_budget.h"
#include "engine_binding.h"
#include "inside.h"
#include "napi_util.h"
#include "outside.h"
#include "routes.h"
#include "wire.h"

namespace weft {

namespace {

// What the JS handle owns: the engine, and a reference that keeps the
// counters' memory alive for as long as workers may write it.
struct EngineHandle {
  std::unique_ptr<Engine> engine;
  napi_ref counters = nullptr;
};

void finalize_engine(napi_env env, void* data, void*) {
  EngineHandle* h = static_cast<EngineHandle*>(data);
  h->engine.reset();  // stops and joins the workers first
  if (h->counters != nullptr) napi_delete_reference(env, h->counters);
  delete h;
}

bool get_prop(napi_env env, napi_value obj, const char* name, napi_value* out) {
  return napi_get_named_property(env, obj, name, out) == napi_ok;
}

bool int_prop(napi_env env, napi_value obj, const char* name, double min, double max, double* out) {
  napi_value v;
  return get_prop(env, obj, name, &v) && integer_arg(env, v, name, min, max, out);
}

bool bool_prop(napi_env env, napi_value obj, const char* name, bool* out) {
  napi_value v;
  return get_prop(env, obj, name, &v) && typed_arg(env, v, napi_boolean, name, "a boolean") &&
         napi_get_value_bool(env, v, out) == napi_ok;
}

// routes: { netBase, netLen, subnetLen, slots: Int32Array, peerIp: Uint32Array, peerPort: Uint16Array, peerFlags: Uint8Array }
std::unique_ptr<RouteTable> routes_arg(napi_env env, napi_value obj) {
  double net_base, net_len, subnet_len;
  napi_value v;
  void *slots, *ips, *ports, *flags;
  size_t slot_count, ip_count, port_count, flag_count;
  if (!typed_arg(env, obj, napi_object, "routes", "an object") || !int_prop(env, obj, "netBase", 0, 4294967295.0, &net_base) ||
      !int_prop(env, obj, "netLen", 0, 32, &net_len) || !int_prop(env, obj, "subnetLen", 1, 32, &subnet_len) ||
      !get_prop(env, obj, "slots", &v) || !typed_array_arg(env, v, napi_int32_array, "routes.slots", "Int32Array", &slots, &slot_count) ||
      !get_prop(env, obj, "peerIp", &v) || !typed_array_arg(env, v, napi_uint32_array, "routes.peerIp", "Uint32Array", &ips, &ip_count) ||
      !get_prop(env, obj, "peerPort", &v) ||
      !typed_array_arg(env, v, napi_uint16_array, "routes.peerPort", "Uint16Array", &ports, &port_count) ||
      !get_prop(env, obj, "peerFlags", &v) ||
      !typed_array_arg(env, v, napi_uint8_array, "routes.peerFlags", "Uint8Array", &flags, &flag_count)) {
    return nullptr;
  }
  if (ip_count != port_count || ip_count != flag_count) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "routes.peerIp, routes.peerPort and routes.peerFlags differ in length");
    return nullptr;
  }
  auto t = build_route_table(uint32_t(net_base), int(net_len), int(subnet_len), static_cast<int32_t*>(slots), slot_count,
                             static_cast<uint32_t*>(ips), static_cast<uint16_t*>(ports), static_cast<uint8_t*>(flags), ip_count);
  if (!t) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "inconsistent route table (slot count or peer index out of range)");
  return t;
}

SelfSubnet self_arg(double base, double len) {
  const uint32_t mask = len == 0 ? 0 : uint32_t(0xffffffffu << (32 - int(len)));
  return {uint32_t(base) & mask, mask};
}

EngineHandle* handle_arg(napi_env env, napi_value v) {
  void* data = nullptr;
  if (!typed_arg(env, v, napi_external, "engine", "an engine handle") || napi_get_value_external(env, v, &data) != napi_ok) return nullptr;
  return static_cast<EngineHandle*>(data);
}

// createEngine({ tunFds, vnetHdr, udpGso, udpGro, bindIp, bindDevice, port, vni, selfBase, selfLen, tunAddr, counters })
napi_value js_create_engine(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "createEngine(options)") || !typed_arg(env, argv[0], napi_object, "options", "an object")) {
    throw_last_napi_error(env);
    return nullptr;
  }
  napi_value o = argv[0], fds_v, counters_v;
  EngineConfig cfg;
  double bind_ip, port, vni, self_base, self_len, tun_addr;
  bool is_array = false;
  uint32_t nfds = 0;
  if (!get_prop(env, o, "tunFds", &fds_v) || napi_is_array(env, fds_v, &is_array) != napi_ok) {
    throw_last_napi_error(env);
    return nullptr;
  }
  if (!is_array || napi_get_array_length(env, fds_v, &nfds) != napi_ok || nfds < 1 || nfds > 64) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tunFds must be an array of 1 to 64 fds");
    return nullptr;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value fd_v;
    double fd;
    if (napi_get_element(env, fds_v, i, &fd_v) != napi_ok || !integer_arg(env, fd_v, "tunFds[i]", 0, INT32_MAX, &fd)) {
      throw_last_napi_error(env);
      return nullptr;
    }
    cfg.tun_fds.push_back(int(fd));
  }
  void* counters;
  size_t counter_len;
  if (!bool_prop(env, o, "vnetHdr", &cfg.vnet_hdr) || !bool_prop(env, o, "udpGso", &cfg.udp_gso) ||
      !bool_prop(env, o, "udpGro", &cfg.udp_gro) || !int_prop(env, o, "bindIp", 0, 4294967295.0, &bind_ip) ||
      !int_prop(env, o, "port", 1, 65535, &port) || !int_prop(env, o, "vni", 0, 0xffffff, &vni) ||
      !int_prop(env, o, "selfBase", 0, 4294967295.0, &self_base) || !int_prop(env, o, "selfLen", 0, 32, &self_len) ||
      !int_prop(env, o, "tunAddr", 0, 4294967295.0, &tun_addr) ||
      !get_prop(env, o, "counters", &counters_v) ||
      !typed_array_arg(env, counters_v, napi_biguint64_array, "counters", "BigUint64Array", &counters, &counter_len)) {
    throw_last_napi_error(env);
    return nullptr;
  }
  if (counter_len != size_t(nfds) * kCounterCount) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "counters must hold tunFds.length * COUNTER_NAMES.length slots");
    return nullptr;
  }
  cfg.bind_ip = uint32_t(bind_ip);
  napi_value dev_v;
  char dev[32];
  size_t dev_len = 0;
  if (!get_prop(env, o, "bindDevice", &dev_v) || !typed_arg(env, dev_v, napi_string, "bindDevice", "a string") ||
      napi_get_value_string_utf8(env, dev_v, dev, sizeof(dev), &dev_len) != napi_ok) {
    throw_last_napi_error(env);
    return nullptr;
  }
  if (dev_len >= 16) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bindDevice is an interface name of at most 15 bytes");
    return nullptr;
  }
  cfg.bind_dev.assign(dev, dev_len);
  cfg.port = uint16_t(port);
  cfg.vni = uint32_t(vni);
  cfg.self = self_arg(self_base, self_len);
  cfg.tun_addr = uint32_t(tun_addr);
  cfg.counters = static_cast<uint64_t*>(counters);

  EngineHandle* h = new (std::nothrow) EngineHandle();
  if (h == nullptr) {
    throw_errno(env, ENOMEM, "start the native engine", "");
    return nullptr;
  }
  // Reference the counters before any worker can write them.
  if (napi_create_reference(env, counters_v, 1, &h->counters) != napi_ok) {
    delete h;
    throw_last_napi_error(env);
    return nullptr;
  }
  int err = 0;
  const char* what = "start";
  h->engine = Engine::start(cfg, &err, &what);
  napi_value result;
  if (!h->engine || napi_create_external(env, h, finalize_engine, nullptr, &result) != napi_ok) {
    if (!h->engine) {
      char msg[128];
      snprintf(msg, sizeof(msg), "native engine: %s", what);
      throw_errno(env, err, msg, "");
    } else {
      throw_last_napi_error(env);
    }
    h->engine.reset();
    napi_delete_reference(env, h->counters);
    delete h;
    return nullptr;
  }
  return result;
}

// engineSetRoutes(engine, routes): swaps the whole table in; the next batch uses it.
napi_value js_engine_set_routes(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "engineSetRoutes(engine, routes)")) {
    throw_last_napi_error(env);
    return nullptr;
  }
  EngineHandle* h = handle_arg(env, argv[0]);
  if (h == nullptr) return nullptr;
  auto t = routes_arg(env, argv[1]);
  if (!t) return nullptr;
  if (h->engine) h->engine->set_routes(std::move(t));
  return nullptr;
}

// engineStop(engine): stops and joins the workers; the TUN fds are the caller's again. Idempotent.
napi_value js_engine_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "engineStop(engine)")) {
    throw_last_napi_error(env);
    return nullptr;
  }
  EngineHandle* h = handle_arg(env, argv[0]);
  if (h == nullptr) return nullptr;
  h->engine.reset();
  return nullptr;
}

// engineInfo(engine): { udpGso, udpGro, workersRunning, retiredTables }: the offloads in use after probing,
// live workers, and replaced route tables not yet freed.
napi_value js_engine_info(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "engineInfo(engine)")) {
    throw_last_napi_error(env);
    return nullptr;
  }
  EngineHandle* h = handle_arg(env, argv[0]);
  if (h == nullptr) return nullptr;
  napi_value result, gso, gro, running, retired, bound;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_int32(env, h->engine ? int32_t(h->engine->retired_tables()) : 0, &retired) != napi_ok ||
      napi_set_named_property(env, result, "retiredTables", retired) != napi_ok ||
      napi_get_boolean(env, h->engine && h->engine->bound_to_device(), &bound) != napi_ok ||
      napi_set_named_property(env, result, "boundToDevice", bound) != napi_ok ||
      napi_create_int32(env, h->engine ? h->engine->workers_running() : 0, &running) != napi_ok ||
      napi_set_named_property(env, result, "workersRunning", running) != napi_ok ||
      napi_get_boolean(env, h->engine && h->engine->udp_gso(), &gso) != napi_ok ||
      napi_get_boolean(env, h->engine && h->engine->udp_gro(), &gro) != napi_ok ||
      napi_set_named_property(env, result, "udpGso", gso) != napi_ok || napi_set_named_property(env, result, "udpGro", gro) != napi_ok) {
    throw_last_napi_error(env);
    return nullptr;
  }
  return result;
}

// ---- In-process entry points (tests, microbenchmark): the per-packet code, no I/O.

// The arguments both entry points share: a route table, this node
// ({ base, len, vni }), packets (Buffer[], borrowed for the call) and one
// outer source address per packet.
struct PacketBatch {
  std::unique_ptr<RouteTable> table;
  SelfSubnet self{0, 0};
  uint32_t vni = 0;
  std::vector<const uint8_t*> packets;
  std::vector<size_t> lengths;
  const uint32_t* outer_src = nullptr;
};

bool batch_args(napi_env env, napi_value routes, napi_value self, napi_value packets, napi_value outer_src, PacketBatch* b) {
  double self_base, self_len, vni;
  uint32_t count = 0;
  void* src;
  size_t src_len;
  if (!int_prop(env, self, "base", 0, 4294967295.0, &self_base) || !int_prop(env, self, "len", 0, 32, &self_len) ||
      !int_prop(env, self, "vni", 0, 0xffffff, &vni) || napi_get_array_length(env, packets, &count) != napi_ok ||
      !typed_array_arg(env, outer_src, napi_uint32_array, "outerSrc", "Uint32Array", &src, &src_len)) {
    throw_last_napi_error(env);
    return false;
  }
  if (src_len < count) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "outerSrc needs one address per packet");
    return false;
  }
  b->table = routes_arg(env, routes);
  if (!b->table) return false;
  b->self = self_arg(self_base, self_len);
  b->vni = uint32_t(vni);
  b->outer_src = static_cast<uint32_t*>(src);
  b->packets.resize(count);
  b->lengths.resize(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value pv;
    uint8_t* p;
    if (napi_get_element(env, packets, i, &pv) != napi_ok || !buffer_arg(env, pv, "packets[i]", &p, &b->lengths[i])) {
      throw_last_napi_error(env);
      return false;
    }
    b->packets[i] = p;
  }
  return true;
}

// classifyBatch(direction, routes, self {base,len,vni}, packets: Buffer[], outerSrc: Uint32Array, counters: BigUint64Array): Int32Array
// direction 0 (inside): the classify_inside verdict per packet; 1 (outside): 1 accepted, 0 dropped.
napi_value js_classify_batch(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  double direction;
  void* counters;
  size_t counter_len;
  PacketBatch b;
  if (!get_args(env, info, 6, argv, "classifyBatch(direction, routes, self, packets, outerSrc, counters)") ||
      !integer_arg(env, argv[0], "direction", 0, 1, &direction) ||
      !typed_array_arg(env, argv[5], napi_biguint64_array, "counters", "BigUint64Array", &counters, &counter_len)) {
    throw_last_napi_error(env);
    return nullptr;
  }
  if (counter_len != kCounterCount) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "counters must hold one block (COUNTER_NAMES.length)");
    return nullptr;
  }
  if (!batch_args(env, argv[1], argv[2], argv[3], argv[4], &b)) return nullptr;
  const size_t count = b.packets.size();
  napi_value ab, out;
  void* out_data;
  if (napi_create_arraybuffer(env, count * 4, &out_data, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, count, ab, 0, &out) != napi_ok) {
    throw_last_napi_error(env);
    return nullptr;
  }
  Counters c(static_cast<uint64_t*>(counters));
  for (size_t i = 0; i < count; i++) {
    static_cast<int32_t*>(out_data)[i] =
        direction == 0 ? classify_inside(b.packets[i], b.lengths[i], *b.table, c)
                       : int32_t(accept_outside(b.packets[i], b.lengths[i], b.outer_src[i], *b.table, b.self, b.vni, c));
  }
  return out;
}

// benchEncap(routes, self {base,len,vni}, packets: Buffer[], outerSrc, iterations): ns per packet of
// classify_inside + VXLAN-GPE encapsulation (header + copy) + accept_outside on the result.
napi_value js_bench_encap(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  double iterations;
  PacketBatch b;
  if (!get_args(env, info, 5, argv, "benchEncap(routes, self, packets, outerSrc, iterations)") ||
      !integer_arg(env, argv[4], "iterations", 1, 1e9, &iterations)) {
    throw_last_napi_error(env);
    return nullptr;
  }
  if (!batch_args(env, argv[0], argv[1], argv[2], argv[3], &b)) return nullptr;
  const size_t count = b.packets.size();
  if (count == 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "need at least one packet");
    return nullptr;
  }
  size_t max_len = 0;
  for (size_t len : b.lengths) max_len = len > max_len ? len : max_len;
  std::vector<uint8_t> scratch(max_len + kGpeHeaderLen);
  uint64_t slots[kCounterCount] = {};
  Counters c(slots);
  uint64_t accepted = 0;
  timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uint64_t it = 0; it < uint64_t(iterations); it++) {
    for (size_t i = 0; i < count; i++) {
      const int32_t peer = classify_inside(b.packets[i], b.lengths[i], *b.table, c);
      if (peer < 0) continue;
      gpe_write(scratch.data(), b.vni);
      memcpy(scratch.data() + kGpeHeaderLen, b.packets[i], b.lengths[i]);
      accepted += accept_outside(scratch.data(), b.lengths[i] + kGpeHeaderLen, b.outer_src[i], *b.table, b.self, b.vni, c);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double ns = double(t1.tv_sec - t0.tv_sec) * 1e9 + double(t1.tv_nsec - t0.tv_nsec);
  napi_value result;
  // `accepted` keeps the loop from being optimized away; a run that accepted nothing measured nothing.
  if (napi_create_double(env, accepted == 0 ? -1.0 : ns / (iterations * double(count)), &result) != napi_ok) {
    throw_last_napi_error(env);
    return nullptr;
  }
  return result;
}


}  // namespace

napi_status init_engine_exports(napi_env env, napi_value exports) {
  napi_value names;
  if (napi_create_array_with_length(env, kCounterCount, &names) != napi_ok) return napi_generic_failure;
  for (int i = 0; i < kCounterCount; i++) {
    napi_value s;
    if (napi_create_string_utf8(env, kCounterNames[i], NAPI_AUTO_LENGTH, &s) != napi_ok ||
        napi_set_element(env, names, uint32_t(i), s) != napi_ok) {
      return napi_generic_failure;
    }
  }
  // The numbers the TypeScript side must agree with (the differential test holds them equal).
  napi_value constants;
  const struct {
    const char* name;
    double value;
  } shared[] = {
      {"maxTsoSegments", kMaxSegs},   {"gpeHeaderLen", double(kGpeHeaderLen)}, {"encapOverhead", double(kEncapOverhead)},
      {"icmpErrorMax", double(kIcmpErrorMax)}, {"icmpBurst", kIcmpBurst},      {"icmpPerSecond", kIcmpPerSecond},
      {"peerTcpCsumPartial", kPeerTcpCsumPartial},
  };
  if (napi_create_object(env, &constants) != napi_ok) return napi_generic_failure;
  for (const auto& c : shared) {
    napi_value v;
    if (napi_create_double(env, c.value, &v) != napi_ok || napi_set_named_property(env, constants, c.name, v) != napi_ok) {
      return napi_generic_failure;
    }
  }
  if (napi_set_named_property(env, exports, "CONSTANTS", constants) != napi_ok ||
      napi_set_named_property(env, exports, "COUNTER_NAMES", names) != napi_ok ||
      !set_function(env, exports, "createEngine", js_create_engine) || !set_function(env, exports, "engineSetRoutes", js_engine_set_routes) ||
      !set_function(env, exports, "engineStop", js_engine_stop) || !set_function(env, exports, "engineInfo", js_engine_info) ||
      !set_function(env, exports, "classifyBatch", js_classify_batch) || !set_function(env, exports, "benchEncap", js_bench_encap)) {
    return napi_generic_failure;
  }
  return napi_ok;
}

}  // namespace weft
