// Errno errors for JS: see napi_util.h.
#include "napi_util.h"

#include <errno.h>
#include <string.h>

namespace weft {
namespace {

// Errno names for Error.code, as Node spells them; "E<number>" for the rest.
const char* errno_name(int err, char* fallback, size_t fallback_len) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EPIPE: return "EPIPE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETDOWN: return "ENETDOWN";
    case ENETUNREACH: return "ENETUNREACH";
    case ENOBUFS: return "ENOBUFS";
    case EBADFD: return "EBADFD";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPROTO: return "EPROTO";
    default:
      snprintf(fallback, fallback_len, "E%d", err);
      return fallback;
  }
}

}  // namespace

void throw_errno(napi_env env, int err, const char* what, const char* detail) {
  char code_buf[16], reason[128], msg[512];
  const char* code = errno_name(err, code_buf, sizeof(code_buf));
  const char* text = strerror_r(err, reason, sizeof(reason));  // GNU variant: returns the text
  snprintf(msg, sizeof(msg), "%s: %s%s", what, text, detail);
  napi_value code_value, msg_value, error;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_value) != napi_ok ||
      napi_create_error(env, code_value, msg_value, &error) != napi_ok || napi_throw(env, error) != napi_ok) {
    throw_last_napi_error(env);
  }
}

}  // namespace weft
