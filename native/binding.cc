// Module init and argument unpacking for the production addon weft.node (what
// weftd loads): openTun, writePacket, sdNotify, lockFile, netlinkTransact,
// TunReader, the TUN flag constants and the engine's exports (engine_binding.cc).
// The work is in tun_linux.cc, tun_reader.cc, sd_notify.cc and netlink.cc;
// this file only converts between JS values and C. Test-only entry points
// are in the test addon (test_binding.cc).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <node_api.h>

#include "engine_binding.h"
#include "napi_util.h"
#include "netlink.h"
#include "sd_notify.h"
#include "tun_linux.h"
#include "tun_reader.h"

namespace weft {
namespace {

// openTun(name: string, flags: number): { fd: number, name: string }
napi_value js_open_tun(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "openTun(name, flags)") || !typed_arg(env, argv[0], napi_string, "name", "a string")) {
    return throw_last_napi_error(env);
  }
  double flags;
  if (!integer_arg(env, argv[1], "flags", 0, kTunMultiQueue | kTunVnetHdr, &flags)) return nullptr;

  // Long enough to quote any sane name in the error; longer names are
  // rejected anyway (IFNAMSIZ is 16), quoted truncated.
  char name[128];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &len) != napi_ok) return throw_last_napi_error(env);
  char what[192];
  snprintf(what, sizeof(what), "open TUN \"%s\"", name);
  if (len >= IFNAMSIZ) {
    throw_errno(env, EINVAL, what, ": a device name is at most 15 bytes");
    return nullptr;
  }
  if (strlen(name) != len) {
    throw_errno(env, EINVAL, what, ": the name contains a NUL character");
    return nullptr;
  }

  char actual[IFNAMSIZ];
  int err = 0;
  int fd = tun_open(name, static_cast<int>(flags), actual, &err);
  if (fd < 0) {
    throw_errno(env, err, what, "");
    return nullptr;
  }

  napi_value result, fd_value, name_value;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &name_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_set_named_property(env, result, "name", name_value) != napi_ok) {
    throw_last_napi_error(env);
    close(fd);  // nobody else knows this fd
    return nullptr;
  }
  return result;
}

// writePacket(fd, buf, offset, length): bytes written, or -errno. Throws only
// for bad arguments: a refused write (EAGAIN, ENOBUFS, EIO...) is a drop the
// caller counts.
napi_value js_write_packet(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv, "writePacket(fd, buf, offset, length)")) return throw_last_napi_error(env);
  double fd, offset, length;
  uint8_t* data;
  size_t buf_len;
  if (!integer_arg(env, argv[0], "fd", 0, INT32_MAX, &fd)) return nullptr;
  if (!buffer_arg(env, argv[1], "buf", &data, &buf_len)) return nullptr;
  if (!integer_arg(env, argv[2], "offset", 0, static_cast<double>(buf_len), &offset)) return nullptr;
  if (!integer_arg(env, argv[3], "length", 0, static_cast<double>(buf_len) - offset, &length)) return nullptr;

  ssize_t n;
  do {
    n = write(static_cast<int>(fd), data + static_cast<size_t>(offset), static_cast<size_t>(length));
  } while (n < 0 && errno == EINTR);

  napi_value result;
  if (napi_create_int32(env, n < 0 ? -errno : static_cast<int32_t>(n), &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// lockFile(fd): 0 once this process holds an exclusive flock on fd, or the
// errno (EWOULDBLOCK: another process holds it). Never waits. The lock lives
// as long as the fd: closing it, or the process dying, releases it.
napi_value js_lock_file(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  double fd;
  if (!get_args(env, info, 1, argv, "lockFile(fd)")) return throw_last_napi_error(env);
  if (!integer_arg(env, argv[0], "fd", 0, INT32_MAX, &fd)) return nullptr;
  int rc;
  do {
    rc = flock(static_cast<int>(fd), LOCK_EX | LOCK_NB);
  } while (rc < 0 && errno == EINTR);
  napi_value result;
  if (napi_create_int32(env, rc < 0 ? errno : 0, &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// netlinkTransact(protocol, requests): the kernel's reply messages, back to
// back, once every request is answered (netlink.h). Throws an Error with the
// errno's code when the conversation fails; a request the kernel refused is
// an NLMSG_ERROR among the replies, not a throw.
napi_value js_netlink_transact(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  double protocol;
  uint8_t* data;
  size_t len;
  if (!get_args(env, info, 2, argv, "netlinkTransact(protocol, requests)")) return throw_last_napi_error(env);
  if (!integer_arg(env, argv[0], "protocol", 0, 31, &protocol)) return nullptr;
  if (!buffer_arg(env, argv[1], "requests", &data, &len)) return nullptr;
  std::vector<uint8_t> replies;
  const int err = netlink_transact(static_cast<int>(protocol), data, len, &replies);
  if (err != 0) {
    throw_errno(env, err, "netlink", "");
    return nullptr;
  }
  napi_value result;
  void* copy;
  if (napi_create_buffer_copy(env, replies.size(), replies.data(), &copy, &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

// sdNotify(socketPath, state): 0, or the errno of the failed send. Throws only for bad arguments.
napi_value js_sd_notify(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[128];
  size_t path_len = 0, state_len = 0;
  if (!get_args(env, info, 2, argv, "sdNotify(socketPath, state)") || !typed_arg(env, argv[0], napi_string, "socketPath", "a string") ||
      !typed_arg(env, argv[1], napi_string, "state", "a string") ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], nullptr, 0, &state_len) != napi_ok) {
    return throw_last_napi_error(env);
  }
  std::string state(state_len + 1, '\0');
  if (napi_get_value_string_utf8(env, argv[1], &state[0], state.size(), &state_len) != napi_ok) return throw_last_napi_error(env);
  // A path that filled the buffer was cut: report it as too long rather than send elsewhere.
  const int err = path_len + 1 >= sizeof(path) ? ENAMETOOLONG : sd_notify_send(path, state.data(), state_len);
  napi_value result;
  if (napi_create_int32(env, err, &result) != napi_ok) return throw_last_napi_error(env);
  return result;
}

bool set_int(napi_env env, napi_value exports, const char* name, int32_t value) {
  napi_value v;
  return napi_create_int32(env, value, &v) == napi_ok && napi_set_named_property(env, exports, name, v) == napi_ok;
}

}  // namespace
}  // namespace weft

NAPI_MODULE_INIT() {
  napi_value reader_class = weft::tun_reader_define_class(env);
  if (reader_class == nullptr) return nullptr;
  if (!weft::set_function(env, exports, "openTun", weft::js_open_tun) ||
      !weft::set_function(env, exports, "writePacket", weft::js_write_packet) ||
      !weft::set_function(env, exports, "sdNotify", weft::js_sd_notify) ||
      !weft::set_function(env, exports, "lockFile", weft::js_lock_file) ||
      !weft::set_function(env, exports, "netlinkTransact", weft::js_netlink_transact) ||
      napi_set_named_property(env, exports, "TunReader", reader_class) != napi_ok ||
      !weft::set_int(env, exports, "TUN_MULTI_QUEUE", weft::kTunMultiQueue) ||
      !weft::set_int(env, exports, "TUN_VNET_HDR", weft::kTunVnetHdr) ||
      weft::init_engine_exports(env, exports) != napi_ok) {
    return weft::throw_last_napi_error(env);
  }
  return exports;
}
