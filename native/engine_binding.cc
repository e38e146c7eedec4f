// Node-API surface of the native engine: argument unpacking only. The
// engine's calls run at control-plane rate (start, a whole route table,
// stop); counters are read by JS straight from the BigUint64Array it handed
// over. The in-process test entry points are in engine_test_binding.cc.
#include "engine_binding.h"

#include <errno.h>
#include <stdio.h>

#include <memory>
#include <new>
#include <string>
#include <vector>

#include "counters.h"
#include "dataplane.h"
#include "napi_util.h"
#include "routes_binding.h"

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

EngineHandle* handle_arg(napi_env env, napi_value v) {
  void* data = nullptr;
  if (!typed_arg(env, v, napi_external, "engine", "an engine handle") || napi_get_value_external(env, v, &data) != napi_ok) return nullptr;
  return static_cast<EngineHandle*>(data);
}

// options.tunFds: an array of 1 to 64 fds. False with an exception pending,
// or after a failed N-API call (the caller throws), as for the helpers below.
bool tun_fds_prop(napi_env env, napi_value o, std::vector<int>* fds) {
  napi_value fds_v;
  bool is_array = false;
  uint32_t nfds = 0;
  if (!get_prop(env, o, "tunFds", &fds_v) || napi_is_array(env, fds_v, &is_array) != napi_ok) return false;
  if (!is_array || napi_get_array_length(env, fds_v, &nfds) != napi_ok || nfds < 1 || nfds > 64) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tunFds must be an array of 1 to 64 fds");
    return false;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value fd_v;
    double fd;
    if (napi_get_element(env, fds_v, i, &fd_v) != napi_ok || !integer_arg(env, fd_v, "tunFds[i]", 0, INT32_MAX, &fd)) return false;
    fds->push_back(int(fd));
  }
  return true;
}

// options.bindDevice: an interface name of at most 15 bytes, or ''.
bool bind_device_prop(napi_env env, napi_value o, std::string* dev) {
  napi_value dev_v;
  char buf[32];
  size_t len = 0;
  if (!get_prop(env, o, "bindDevice", &dev_v) || !typed_arg(env, dev_v, napi_string, "bindDevice", "a string") ||
      napi_get_value_string_utf8(env, dev_v, buf, sizeof(buf), &len) != napi_ok) {
    return false;
  }
  if (len >= 16) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bindDevice is an interface name of at most 15 bytes");
    return false;
  }
  dev->assign(buf, len);
  return true;
}

// The whole options object into *cfg; *counters_v is options.counters, which
// the handle must keep referenced while the workers write it.
bool engine_config_arg(napi_env env, napi_value o, EngineConfig* cfg, napi_value* counters_v) {
  double bind_ip, port, vni, self_base, self_len, tun_addr;
  void* counters;
  size_t counter_len;
  if (!tun_fds_prop(env, o, &cfg->tun_fds)) return false;
  if (!bool_prop(env, o, "vnetHdr", &cfg->vnet_hdr) || !bool_prop(env, o, "udpGso", &cfg->udp_gso) ||
      !bool_prop(env, o, "udpGro", &cfg->udp_gro) || !int_prop(env, o, "bindIp", 0, 4294967295.0, &bind_ip) ||
      !int_prop(env, o, "port", 1, 65535, &port) || !int_prop(env, o, "vni", 0, 0xffffff, &vni) ||
      !int_prop(env, o, "selfBase", 0, 4294967295.0, &self_base) || !int_prop(env, o, "selfLen", 0, 32, &self_len) ||
      !int_prop(env, o, "tunAddr", 0, 4294967295.0, &tun_addr) || !get_prop(env, o, "counters", counters_v) ||
      !typed_array_arg(env, *counters_v, napi_biguint64_array, "counters", "BigUint64Array", &counters, &counter_len)) {
    return false;
  }
  if (counter_len != cfg->tun_fds.size() * kCounterCount) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "counters must hold tunFds.length * COUNTER_NAMES.length slots");
    return false;
  }
  if (!bind_device_prop(env, o, &cfg->bind_dev)) return false;
  cfg->bind_ip = uint32_t(bind_ip);
  cfg->port = uint16_t(port);
  cfg->vni = uint32_t(vni);
  cfg->self = self_arg(self_base, self_len);
  cfg->tun_addr = uint32_t(tun_addr);
  cfg->counters = static_cast<uint64_t*>(counters);
  return true;
}

// Starts the engine and wraps it in a handle that owns it and the counters'
// reference. Throws (and frees everything) on failure.
napi_value start_engine(napi_env env, const EngineConfig& cfg, napi_value counters_v) {
  EngineHandle* h = new (std::nothrow) EngineHandle();
  if (h == nullptr) {
    throw_errno(env, ENOMEM, "start the native engine", "");
    return nullptr;
  }
  // Reference the counters before any worker can write them.
  if (napi_create_reference(env, counters_v, 1, &h->counters) != napi_ok) {
    delete h;
    return throw_last_napi_error(env);
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

// createEngine({ tunFds, vnetHdr, udpGso, udpGro, bindIp, bindDevice, port, vni, selfBase, selfLen, tunAddr, counters })
napi_value js_create_engine(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  EngineConfig cfg;
  napi_value counters_v;
  if (!get_args(env, info, 1, argv, "createEngine(options)") || !typed_arg(env, argv[0], napi_object, "options", "an object") ||
      !engine_config_arg(env, argv[0], &cfg, &counters_v)) {
    return throw_last_napi_error(env);
  }
  return start_engine(env, cfg, counters_v);
}

// engineSetRoutes(engine, routes): swaps the whole table in; the next batch uses it.
napi_value js_engine_set_routes(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "engineSetRoutes(engine, routes)")) return throw_last_napi_error(env);
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
  if (!get_args(env, info, 1, argv, "engineStop(engine)")) return throw_last_napi_error(env);
  EngineHandle* h = handle_arg(env, argv[0]);
  if (h == nullptr) return nullptr;
  h->engine.reset();
  return nullptr;
}

// engineInfo(engine): { udpGso, udpGro, workersRunning, retiredTables }: the offloads in use after probing,
// live workers, and replaced route tables not yet freed.
napi_value js_engine_info(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "engineInfo(engine)")) return throw_last_napi_error(env);
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
    return throw_last_napi_error(env);
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
  if (napi_set_named_property(env, exports, "COUNTER_NAMES", names) != napi_ok ||
      !set_function(env, exports, "createEngine", js_create_engine) || !set_function(env, exports, "engineSetRoutes", js_engine_set_routes) ||
      !set_function(env, exports, "engineStop", js_engine_stop) || !set_function(env, exports, "engineInfo", js_engine_info)) {
    return napi_generic_failure;
  }
  return napi_ok;
}

}  // namespace weft
