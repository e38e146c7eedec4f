// TunReader: batch reads from a TUN fd on Node's libuv loop into a JS-owned slab,
// one JS callback per batch. Also the Node-API argument helpers binding.cc shares.
//
// JS contract (validated in the constructor; TypeError/RangeError otherwise):
//
//   new TunReader(fd, slab, slotSize, lengths, onBatch)
//     fd        a non-blocking fd; borrowed: the caller closes it, after stop().
//     slab      Buffer of at least lengths.length * slotSize bytes.
//     slotSize  bytes per packet slot (> 0); packet i lands at slab[i * slotSize].
//     lengths   Uint32Array; its length is the batch size; lengths[i] is packet i's length.
//     onBatch   (count, errno) => void, called once per batch on the main thread.
//               slab and lengths are borrowed until it returns: the next batch
//               overwrites them. errno is 0, or the errno of a read error that
//               ended the batch (EAGAIN/EINTR never show); the count packets read
//               before it are valid. errno with count 0 and the reader stopped
//               means the fd itself failed (poll error, e.g. the device is gone).
//               A throw becomes an uncaught exception (process 'uncaughtException').
//   start()     begins polling; idempotent; throws once stopped.
//   stop()      idempotent; no callback runs after it returns (also from inside onBatch).
//
// slab and lengths must not be detached/transferred while the reader lives; if
// they are, the reader reports EFAULT once and stops instead of reading.
// A started reader keeps itself (and the loop) alive until stop(). A reader
// that is garbage collected, or alive at environment exit, stops itself.
#ifndef WEFT_TUN_READER_H_
#define WEFT_TUN_READER_H_

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <node_api.h>

namespace weft {

// Defines the TunReader class. Returns its constructor, or nullptr with a JS exception pending.
napi_value tun_reader_define_class(napi_env env);

// ---- Argument helpers (shared with binding.cc). Each returns false with a JS
// exception pending (TypeError for a wrong type, RangeError out of range).

// `value` must be an integral number in [min, max]; `what` names it in the message.
inline bool integer_arg(napi_env env, napi_value value, const char* what, double min, double max, double* out) {
  napi_valuetype type;
  double d;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type != napi_number || napi_get_value_double(env, value, &d) != napi_ok || !isfinite(d) || trunc(d) != d) {
    char msg[128];
    snprintf(msg, sizeof(msg), "%s must be an integer", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  if (d < min || d > max) {
    char msg[160];
    snprintf(msg, sizeof(msg), "%s must be in [%.0f, %.0f], got %.0f", what, min, max, d);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = d;
  return true;
}

// `value` must be a Buffer (any ArrayBufferView); yields its bytes.
inline bool buffer_arg(napi_env env, napi_value value, const char* what, uint8_t** data, size_t* length) {
  bool is_buffer = false;
  void* p = nullptr;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok) return false;
  if (!is_buffer) {
    char msg[128];
    snprintf(msg, sizeof(msg), "%s must be a Buffer", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  if (napi_get_buffer_info(env, value, &p, length) != napi_ok) return false;
  *data = static_cast<uint8_t*>(p);
  return true;
}

// After a failed napi_* call: makes sure a JS exception is pending.
inline void throw_last_napi_error(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  const char* msg = info != nullptr && info->error_message != nullptr ? info->error_message : "Node-API call failed";
  napi_throw_error(env, "ERR_WEFT_NAPI", msg);
}

}  // namespace weft

#endif  // WEFT_TUN_READER_H_
