// The test addon's in-process entry points to the per-packet code, no I/O:
// classifyBatch (the differential test against the js engine), benchEncap
// (bench/encap.ts) and CONSTANTS (the numbers the TypeScript must agree
// with). Built only into weft_test.node; argument unpacking and timing only.
#include "engine_test_binding.h"

#include <string.h>
#include <time.h>

#include <memory>
#include <vector>

#include "counters.h"
#include "dataplane.h"
#include "icmp_budget.h"
#include "inside.h"
#include "napi_util.h"
#include "outside.h"
#include "routes.h"
#include "routes_binding.h"
#include "wire.h"

namespace weft {

bool batch_args(napi_env env, napi_value routes, napi_value self, napi_value packets, napi_value outer_src, bool with_vni, PacketBatch* b) {
  double self_base, self_len, vni = 0;
  uint32_t count = 0;
  void* src;
  size_t src_len;
  if (!int_prop(env, self, "base", 0, 4294967295.0, &self_base) || !int_prop(env, self, "len", 0, 32, &self_len) ||
      (with_vni && !int_prop(env, self, "vni", 0, 0xffffff, &vni)) || napi_get_array_length(env, packets, &count) != napi_ok ||
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
    if (napi_get_element(env, packets, i, &pv) != napi_ok || !buffer_arg(env, pv, "packets[i]", &b->packets[i], &b->lengths[i])) {
      throw_last_napi_error(env);
      return false;
    }
  }
  return true;
}

namespace {

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
    return throw_last_napi_error(env);
  }
  if (counter_len != kCounterCount) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "counters must hold one block (COUNTER_NAMES.length)");
    return nullptr;
  }
  if (!batch_args(env, argv[1], argv[2], argv[3], argv[4], true, &b)) return nullptr;
  const size_t count = b.packets.size();
  napi_value ab, out;
  void* out_data;
  if (napi_create_arraybuffer(env, count * 4, &out_data, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, count, ab, 0, &out) != napi_ok) {
    return throw_last_napi_error(env);
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
    return throw_last_napi_error(env);
  }
  if (!batch_args(env, argv[0], argv[1], argv[2], argv[3], true, &b)) return nullptr;
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
    return throw_last_napi_error(env);
  }
  return result;
}

}  // namespace

napi_status init_engine_test_exports(napi_env env, napi_value exports) {
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
      !set_function(env, exports, "classifyBatch", js_classify_batch) || !set_function(env, exports, "benchEncap", js_bench_encap)) {
    return napi_generic_failure;
  }
  return napi_ok;
}

}  // namespace weft
