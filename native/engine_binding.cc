// Node-API surface of the native engine: argument unpacking only. The
// engine's calls run at control-plane rate (start, a whole route table with
// its WireGuard sessions, a session's keys, a batch of handshake messages,
// stop); counters are read by JS straight from the BigUint64Array it handed
// over, and the workers tell JS there are handshake messages to take through
// one thread-safe function, at most once until JS took them. The in-process
// test entry points are in engine_test_binding.cc.
#include "engine_binding.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <memory>
#include <new>
#include <string>
#include <vector>

#include "counters.h"
#include "dataplane.h"
#include "napi_util.h"
#include "routes_binding.h"
#include "wire.h"

namespace weft {

namespace {

// What the JS handle owns: the engine, and a reference that keeps the
// counters' memory alive for as long as workers may write it.
struct EngineHandle {
  std::unique_ptr<Engine> engine;
  napi_ref counters = nullptr;
  // Calls options.onWireguard on JS's thread (no arguments): handshake messages or session requests wait.
  napi_threadsafe_function notify = nullptr;
};

// Stops and joins the workers (none notifies after), then lets the thread-safe function go.
void stop_engine(EngineHandle* h) {
  h->engine.reset();
  if (h->notify != nullptr) napi_release_threadsafe_function(h->notify, napi_tsfn_release);
  h->notify = nullptr;
}

void finalize_engine(napi_env env, void* data, void*) {
  EngineHandle* h = static_cast<EngineHandle*>(data);
  stop_engine(h);
  if (h->counters != nullptr) napi_delete_reference(env, h->counters);
  delete h;
}

// The workers' notification: schedules onWireguard on JS's thread, never blocking.
void notify_js(void* arg) {
  (void)napi_call_threadsafe_function(static_cast<napi_threadsafe_function>(arg), nullptr, napi_tsfn_nonblocking);
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

// Starts the engine and wraps it in a handle that owns it, the counters'
// reference and the thread-safe function calling `on_wireguard` (when it is
// a function). Throws (and frees everything) on failure.
napi_value start_engine(napi_env env, const EngineConfig& cfg, napi_value counters_v, napi_value on_wireguard) {
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
  napi_valuetype type;
  if (napi_typeof(env, on_wireguard, &type) == napi_ok && type == napi_function) {
    napi_value name;
    if (napi_create_string_utf8(env, "weft.wireguard", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_threadsafe_function(env, on_wireguard, nullptr, name, 0, 1, nullptr, nullptr, nullptr, nullptr, &h->notify) != napi_ok ||
        napi_unref_threadsafe_function(env, h->notify) != napi_ok) {
      throw_last_napi_error(env);
      if (h->notify != nullptr) napi_release_threadsafe_function(h->notify, napi_tsfn_release);
      napi_delete_reference(env, h->counters);
      delete h;
      return nullptr;
    }
  }
  int err = 0;
  const char* what = "start";
  h->engine = Engine::start(cfg, &err, &what);
  if (h->engine && h->notify != nullptr) h->engine->set_notify(notify_js, h->notify);
  napi_value result;
  if (!h->engine || napi_create_external(env, h, finalize_engine, nullptr, &result) != napi_ok) {
    if (!h->engine) {
      char msg[128];
      snprintf(msg, sizeof(msg), "native engine: %s", what);
      throw_errno(env, err, msg, "");
    } else {
      throw_last_napi_error(env);
    }
    stop_engine(h);
    napi_delete_reference(env, h->counters);
    delete h;
    return nullptr;
  }
  return result;
}

// createEngine({ tunFds, vnetHdr, udpGso, udpGro, bindIp, bindDevice, port, vni, selfBase, selfLen, tunAddr, counters, onWireguard? })
napi_value js_create_engine(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  EngineConfig cfg;
  napi_value counters_v, on_wireguard;
  if (!get_args(env, info, 1, argv, "createEngine(options)") || !typed_arg(env, argv[0], napi_object, "options", "an object") ||
      !engine_config_arg(env, argv[0], &cfg, &counters_v) || !get_prop(env, argv[0], "onWireguard", &on_wireguard)) {
    return throw_last_napi_error(env);
  }
  return start_engine(env, cfg, counters_v, on_wireguard);
}

// engineSetRoutes(engine, routes, wireguard?): swaps the whole table in (with
// its WireGuard sessions, when given: routes_binding.h); the next batch uses it.
napi_value js_engine_set_routes(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_some_args(env, info, 2, 3, argv, "engineSetRoutes(engine, routes, wireguard?)")) return throw_last_napi_error(env);
  EngineHandle* h = handle_arg(env, argv[0]);
  if (h == nullptr) return nullptr;
  auto t = routes_arg(env, argv[1]);
  if (!t || !h->engine) return nullptr;
  napi_valuetype type;
  if (napi_typeof(env, argv[2], &type) != napi_ok) return throw_last_napi_error(env);
  if (type != napi_undefined) {
    Engine* e = h->engine.get();
    if (!wg_sessions_arg(env, argv[2], [e](uint32_t i) { return e->wg_keypair(i); }, t.get())) return nullptr;
  }
  h->engine->set_routes(std::move(t));
  return nullptr;
}

// engineStop(engine): stops and joins the workers; the TUN fds are the caller's again. Idempotent.
napi_value js_engine_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "engineStop(engine)")) return throw_last_napi_error(env);
  EngineHandle* h = handle_arg(env, argv[0]);
  if (h == nullptr) return nullptr;
  stop_engine(h);
  return nullptr;
}

// The running engine of argv[0]: nullptr with a TypeError (not a handle) or an Error (stopped) pending.
Engine* running_arg(napi_env env, napi_value v) {
  EngineHandle* h = handle_arg(env, v);
  if (h == nullptr) return nullptr;
  if (!h->engine) napi_throw_error(env, "ERR_WEFT_STOPPED", "the native engine is stopped");
  return h->engine.get();
}

// argv[0] a running engine and argv[1] an integer in [lo, hi] (into *v): nullptr with an exception pending otherwise.
Engine* engine_and_integer(napi_env env, napi_callback_info info, const char* usage, const char* name, double lo, double hi, double* v) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, usage) || !integer_arg(env, argv[1], name, lo, hi, v)) {
    throw_last_napi_error(env);
    return nullptr;
  }
  return running_arg(env, argv[0]);
}

// engineWgEnable(engine, port): opens the WireGuard port in every worker. Throws an errno error naming the step.
napi_value js_engine_wg_enable(napi_env env, napi_callback_info info) {
  double port;
  Engine* e = engine_and_integer(env, info, "engineWgEnable(engine, port)", "port", 1, 65535, &port);
  if (e == nullptr) return nullptr;
  const char* what = "enable WireGuard";
  const int err = e->wg_enable(uint16_t(port), &what);
  if (err != 0) throw_errno(env, err, what, "");
  return nullptr;
}

// engineWgInstall(engine, localIndex, remoteIndex, sendKey, recvKey, initiator, peerIp, peerPort)
napi_value js_engine_wg_install(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  double local, remote, ip, port;
  uint8_t *send, *recv;
  bool initiator;
  if (!get_args(env, info, 8, argv, "engineWgInstall(engine, localIndex, remoteIndex, sendKey, recvKey, initiator, peerIp, peerPort)") ||
      !integer_arg(env, argv[1], "localIndex", 1, 4294967295.0, &local) || !integer_arg(env, argv[2], "remoteIndex", 0, 4294967295.0, &remote) ||
      !wg_key_arg(env, argv[3], "sendKey", &send) || !wg_key_arg(env, argv[4], "recvKey", &recv) ||
      !typed_arg(env, argv[5], napi_boolean, "initiator", "a boolean") || napi_get_value_bool(env, argv[5], &initiator) != napi_ok ||
      !integer_arg(env, argv[6], "peerIp", 0, 4294967295.0, &ip) || !integer_arg(env, argv[7], "peerPort", 0, 65535, &port)) {
    return throw_last_napi_error(env);
  }
  Engine* e = running_arg(env, argv[0]);
  if (e == nullptr) return nullptr;
  if (!e->wg_install(uint32_t(local), uint32_t(remote), send, recv, initiator, uint32_t(ip), uint16_t(port))) {
    throw_errno(env, ENOMEM, "install a WireGuard session", "");
  }
  return nullptr;
}

// engineWgRetire(engine, localIndex): the keypair leaves the engine with the last table that lists it.
napi_value js_engine_wg_retire(napi_env env, napi_callback_info info) {
  double local;
  Engine* e = engine_and_integer(env, info, "engineWgRetire(engine, localIndex)", "localIndex", 0, 4294967295.0, &local);
  if (e != nullptr) e->wg_retire(uint32_t(local));
  return nullptr;
}

// engineWgSend(engine, ip, port, message): 0, or the errno of the send.
napi_value js_engine_wg_send(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  double ip, port;
  uint8_t* msg;
  size_t len;
  if (!get_args(env, info, 4, argv, "engineWgSend(engine, ip, port, message)") || !integer_arg(env, argv[1], "ip", 0, 4294967295.0, &ip) ||
      !integer_arg(env, argv[2], "port", 1, 65535, &port) || !buffer_arg(env, argv[3], "message", &msg, &len)) {
    return throw_last_napi_error(env);
  }
  Engine* e = running_arg(env, argv[0]);
  if (e == nullptr) return nullptr;
  if (napi_create_int32(env, e->wg_send(uint32_t(ip), uint16_t(port), msg, len), &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// engineWgKeepalive(engine, localIndex): 0, or an errno (ENOENT: no such keypair).
napi_value js_engine_wg_keepalive(napi_env env, napi_callback_info info) {
  napi_value result;
  double local;
  Engine* e = engine_and_integer(env, info, "engineWgKeepalive(engine, localIndex)", "localIndex", 0, 4294967295.0, &local);
  if (e == nullptr) return nullptr;
  if (napi_create_int32(env, e->wg_keepalive(uint32_t(local)), &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// engineWgTake(engine, out: Buffer, want: Uint32Array): { messages, wants }: the
// queued handshake messages into out, kEntry (WG_TAKE_ENTRY in addon.ts) bytes each ([source u32 LE][length u16 LE][148 bytes]),
// and the underlay addresses of the peers a packet found no session for into want.
napi_value js_engine_wg_take(napi_env env, napi_callback_info info) {
  napi_value argv[3], result, messages_v, wants_v;
  uint8_t* out;
  size_t out_len, want_len;
  void* want;
  if (!get_args(env, info, 3, argv, "engineWgTake(engine, out, want)") || !buffer_arg(env, argv[1], "out", &out, &out_len) ||
      !typed_array_arg(env, argv[2], napi_uint32_array, "want", "Uint32Array", &want, &want_len)) {
    return throw_last_napi_error(env);
  }
  Engine* e = running_arg(env, argv[0]);
  if (e == nullptr) return nullptr;
  constexpr size_t kEntry = 4 + 2 + kWgInitiationLen;
  constexpr size_t kTakeMax = 256;  // messages per call at most: JS takes HANDSHAKES_PER_TURN (engine_sessions.ts)
  HandshakeEntry entries[kTakeMax];
  const size_t cap = out_len / kEntry < kTakeMax ? out_len / kEntry : kTakeMax;
  size_t wants = 0;
  const size_t n = e->wg_take(entries, cap, static_cast<uint32_t*>(want), want_len, &wants);
  for (size_t i = 0; i < n; i++) {
    uint8_t* p = out + i * kEntry;
    store_le32(p, entries[i].src);
    store_le16(p + 4, entries[i].len);
    memcpy(p + 6, entries[i].msg, entries[i].len);
  }
  if (napi_create_object(env, &result) != napi_ok || napi_create_uint32(env, uint32_t(n), &messages_v) != napi_ok ||
      napi_create_uint32(env, uint32_t(wants), &wants_v) != napi_ok || napi_set_named_property(env, result, "messages", messages_v) != napi_ok ||
      napi_set_named_property(env, result, "wants", wants_v) != napi_ok) {
    return throw_last_napi_error(env);
  }
  return result;
}

// engineWgActivity(engine, out: Float64Array): how many keypairs' activity went into out, 7 numbers each (dataplane.h).
napi_value js_engine_wg_activity(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  void* out;
  size_t len;
  if (!get_args(env, info, 2, argv, "engineWgActivity(engine, out)") ||
      !typed_array_arg(env, argv[1], napi_float64_array, "out", "Float64Array", &out, &len)) {
    return throw_last_napi_error(env);
  }
  Engine* e = running_arg(env, argv[0]);
  if (e == nullptr) return nullptr;
  if (napi_create_uint32(env, uint32_t(e->wg_activity(static_cast<double*>(out), len / 7)), &result) != napi_ok) return throw_last_napi_error(env);
  return result;
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
      !set_function(env, exports, "engineStop", js_engine_stop) || !set_function(env, exports, "engineInfo", js_engine_info) ||
      !set_function(env, exports, "engineWgEnable", js_engine_wg_enable) || !set_function(env, exports, "engineWgInstall", js_engine_wg_install) ||
      !set_function(env, exports, "engineWgRetire", js_engine_wg_retire) || !set_function(env, exports, "engineWgSend", js_engine_wg_send) ||
      !set_function(env, exports, "engineWgKeepalive", js_engine_wg_keepalive) || !set_function(env, exports, "engineWgTake", js_engine_wg_take) ||
      !set_function(env, exports, "engineWgActivity", js_engine_wg_activity)) {
    return napi_generic_failure;
  }
  return napi_ok;
}

}  // namespace weft
