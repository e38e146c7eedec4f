// Shared Node-API helpers for the addon's bindings: argument unpacking that
// throws the right JS error, and errno errors with Node's codes. Every helper
// that returns false (or nullptr) leaves a JS exception pending.
#ifndef WEFT_NAPI_UTIL_H_
#define WEFT_NAPI_UTIL_H_

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <node_api.h>

namespace weft {

// Reads `n` arguments into argv (and `this` into *self when given), of which
// the first `required` must have been passed: a TypeError naming `usage`
// otherwise. Node-API reads the others as undefined when absent.
inline bool get_some_args(napi_env env, napi_callback_info info, size_t required, size_t n, napi_value* argv, const char* usage,
                          napi_value* self = nullptr) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, self, nullptr) != napi_ok) return false;
  if (argc < required) {
    char msg[160];
    snprintf(msg, sizeof(msg), "%s needs %zu argument%s", usage, required, required == 1 ? "" : "s");
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

// Reads exactly `n` arguments, all required: see get_some_args.
inline bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value* argv, const char* usage, napi_value* self = nullptr) {
  return get_some_args(env, info, n, n, argv, usage, self);
}

// `value` must be of `type` (napi_string, napi_function, napi_object...); `what` names it.
inline bool typed_arg(napi_env env, napi_value value, napi_valuetype type, const char* what, const char* type_name) {
  napi_valuetype actual;
  if (napi_typeof(env, value, &actual) != napi_ok) return false;
  if (actual != type) {
    char msg[128];
    snprintf(msg, sizeof(msg), "%s must be %s", what, type_name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  return true;
}


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

// `value` must be a typed array of `want` (e.g. napi_uint32_array); yields its elements.
inline bool typed_array_arg(napi_env env, napi_value value, napi_typedarray_type want, const char* what, const char* type_name,
                            void** data, size_t* length) {
  bool is_typedarray = false;
  napi_typedarray_type type = napi_int8_array;
  size_t byte_offset = 0;
  napi_value arraybuffer;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok) return false;
  if (is_typedarray && napi_get_typedarray_info(env, value, &type, length, data, &arraybuffer, &byte_offset) != napi_ok) return false;
  if (!is_typedarray || type != want) {
    char msg[128];
    snprintf(msg, sizeof(msg), "%s must be a %s", what, type_name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  return true;
}

// obj[name] into *out. False (an exception possibly pending) when the lookup fails.
inline bool get_prop(napi_env env, napi_value obj, const char* name, napi_value* out) {
  return napi_get_named_property(env, obj, name, out) == napi_ok;
}

// obj[name] as an integer in [min, max], as integer_arg checks it.
inline bool int_prop(napi_env env, napi_value obj, const char* name, double min, double max, double* out) {
  napi_value v;
  return get_prop(env, obj, name, &v) && integer_arg(env, v, name, min, max, out);
}

// obj[name] as a boolean.
inline bool bool_prop(napi_env env, napi_value obj, const char* name, bool* out) {
  napi_value v;
  return get_prop(env, obj, name, &v) && typed_arg(env, v, napi_boolean, name, "a boolean") &&
         napi_get_value_bool(env, v, out) == napi_ok;
}

// exports[name] = a function calling cb. False on any N-API failure (the caller throws).
inline bool set_function(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

// After a failed napi_* call or helper: makes sure a JS exception is pending
// (the helper's own, else an Error from the last N-API error) and returns
// nullptr, what a callback returns then, so a failure path reads
// `if (!ok) return throw_last_napi_error(env);`. Call it before any cleanup
// that makes further N-API calls: they would replace the last error.
inline napi_value throw_last_napi_error(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return nullptr;
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  const char* msg = info != nullptr && info->error_message != nullptr ? info->error_message : "Node-API call failed";
  napi_throw_error(env, "ERR_WEFT_NAPI", msg);
  return nullptr;
}

// Throws Error(`${what}: ${strerror(err)}${detail}`) with .code = the errno name.
void throw_errno(napi_env env, int err, const char* what, const char* detail);

}  // namespace weft

#endif  // WEFT_NAPI_UTIL_H_
