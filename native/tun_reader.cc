// TunReader: see tun_reader.h for the JS contract.
//
// Flow per poll event (main thread, Node's loop):
//   uv_poll says readable -> read() into slot 0, 1, ... until EAGAIN or the
//   batch is full -> one onBatch(count, errno) -> if the batch was full,
//   read the next one, at most kMaxBatchesPerPoll times, then back to the
//   loop so timers and sockets get their turn (the poll is level-triggered:
//   what is left wakes us again).
//
// Lifetimes: the TunReader (owned by its JS wrapper, freed by the finalizer)
// and the PollBox (owned by libuv from uv_poll_init until the close callback)
// are separate allocations, because either can go first. The box's `owner`
// pointer is the only link from libuv to the reader; stopping clears it, so a
// poll callback or cleanup hook that runs later touches nothing freed.
#include "tun_reader.h"

#include "napi_util.h"

#include <errno.h>
#include <unistd.h>

#include <new>

#include <uv.h>

namespace weft {
namespace {

// Batches read per poll event before yielding to the loop.
constexpr int kMaxBatchesPerPoll = 8;

struct TunReader;

struct PollBox {
  uv_poll_t poll;
  TunReader* owner = nullptr;  // nullptr once stopped
  napi_async_cleanup_hook_handle cleanup = nullptr;  // removed in on_close()
};

struct TunReader {
  napi_env env = nullptr;
  int fd = -1;
  size_t slot_size = 0;
  uint32_t batch = 0;
  napi_ref self = nullptr;      // weak unless started: a running reader is not collected
  napi_ref slab = nullptr;      // strong: the slab stays alive while we may write into it
  napi_ref lengths = nullptr;   // strong
  napi_ref callback = nullptr;  // strong
  napi_async_context async_context = nullptr;
  PollBox* box = nullptr;  // nullptr once stopped
  bool started = false;
};

struct Views {
  uint8_t* slab;
  uint32_t* lengths;
};

void on_close(uv_handle_t* handle) {
  PollBox* box = static_cast<PollBox*>(handle->data);
  // Unregisters the env cleanup hook, or tells Node it finished if it was running.
  if (box->cleanup != nullptr) napi_remove_async_cleanup_hook(box->cleanup);
  delete box;
}

// Stops the poll handle and hands it to libuv to close. No Node-API calls, so
// it is safe from the env cleanup hook. Idempotent.
void stop_polling(TunReader* r) {
  PollBox* box = r->box;
  if (box == nullptr) return;
  r->box = nullptr;
  box->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&box->poll), on_close);  // also stops it
}

void delete_ref(napi_env env, napi_ref* ref) {
  if (*ref == nullptr) return;
  napi_delete_reference(env, *ref);  // fails only for a bad ref: nothing to undo
  *ref = nullptr;
}

// stop(): no callback after this; lets go of the slab, lengths and callback,
// and of the self reference that kept a running reader alive.
void stop(TunReader* r) {
  stop_polling(r);
  if (r->started) {
    r->started = false;
    napi_reference_unref(r->env, r->self, nullptr);
  }
  delete_ref(r->env, &r->slab);
  delete_ref(r->env, &r->lengths);
  delete_ref(r->env, &r->callback);
}

// Environment teardown with the reader still polling (e.g. a worker exits):
// close the handle; Node waits for on_close, which removes this hook. The
// references go with the wrapper's finalizer, which Node runs at teardown.
void on_env_cleanup(napi_async_cleanup_hook_handle /*handle*/, void* arg) {
  PollBox* box = static_cast<PollBox*>(arg);
  if (box->owner != nullptr) stop_polling(box->owner);
  // else: already closing; on_close will remove the hook.
}

void finalize(napi_env env, void* data, void* /*hint*/) {
  TunReader* r = static_cast<TunReader*>(data);
  stop_polling(r);
  delete_ref(env, &r->slab);
  delete_ref(env, &r->lengths);
  delete_ref(env, &r->callback);
  delete_ref(env, &r->self);
  if (r->async_context != nullptr) napi_async_destroy(env, r->async_context);
  delete r;
}

// Current data pointers of the slab and lengths (re-read per batch: a JS
// callback could have detached them). False if they no longer fit.
bool get_views(TunReader* r, Views* v) {
  napi_env env = r->env;
  napi_value slab, lengths, arraybuffer;
  void* slab_data = nullptr;
  void* lengths_data = nullptr;
  size_t slab_len = 0, lengths_len = 0, byte_offset = 0;
  napi_typedarray_type type;
  if (r->slab == nullptr || r->lengths == nullptr) return false;
  if (napi_get_reference_value(env, r->slab, &slab) != napi_ok || slab == nullptr) return false;
  if (napi_get_reference_value(env, r->lengths, &lengths) != napi_ok || lengths == nullptr) return false;
  if (napi_get_buffer_info(env, slab, &slab_data, &slab_len) != napi_ok) return false;
  if (napi_get_typedarray_info(env, lengths, &type, &lengths_len, &lengths_data, &arraybuffer, &byte_offset) !=
      napi_ok)
    return false;
  if (slab_data == nullptr || lengths_data == nullptr) return false;
  if (slab_len < static_cast<size_t>(r->batch) * r->slot_size || lengths_len < r->batch) return false;
  v->slab = static_cast<uint8_t*>(slab_data);
  v->lengths = static_cast<uint32_t*>(lengths_data);
  return true;
}

// Calls onBatch(count, err, last); `last` says the reader stopped itself
// after this call (the fd failed). A JS exception goes to the
// uncaught-exception path. False if the callback threw or could not run.
bool deliver(TunReader* r, uint32_t count, int err, bool last = false) {
  napi_env env = r->env;
  napi_value cb, recv, result, argv[3];
  if (r->callback == nullptr) return false;
  if (napi_get_reference_value(env, r->callback, &cb) != napi_ok || cb == nullptr) return false;
  // `this` is the reader object (MakeCallback wants an object); it is
  // strongly referenced while started, which is whenever a poll event runs.
  if (napi_get_reference_value(env, r->self, &recv) != napi_ok || recv == nullptr) return false;
  if (napi_create_uint32(env, count, &argv[0]) != napi_ok) return false;
  if (napi_create_int32(env, err, &argv[1]) != napi_ok) return false;
  if (napi_get_boolean(env, last, &argv[2]) != napi_ok) return false;
  napi_status status = napi_make_callback(env, r->async_context, recv, cb, 3, argv, &result);
  if (status == napi_pending_exception) {
    napi_value exception;
    if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    return false;
  }
  return status == napi_ok;
}

void on_poll(uv_poll_t* handle, int status, int /*events*/) {
  PollBox* box = static_cast<PollBox*>(handle->data);
  TunReader* r = box->owner;
  if (r == nullptr) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  if (status < 0) {
    // libuv already stopped the handle (POLLERR, e.g. the device was deleted).
    deliver(r, 0, -status, true);
    if (box->owner != nullptr) stop(r);
  } else {
    for (int b = 0; b < kMaxBatchesPerPoll; b++) {
      Views v;
      if (!get_views(r, &v)) {
        deliver(r, 0, EFAULT, true);
        if (box->owner != nullptr) stop(r);
        break;
      }
      uint32_t count = 0;
      int err = 0;
      while (count < r->batch) {
        ssize_t n = read(r->fd, v.slab + static_cast<size_t>(count) * r->slot_size, r->slot_size);
        if (n > 0) {
          v.lengths[count++] = static_cast<uint32_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        break;  // EAGAIN, an error, or 0 (nothing to read)
      }
      if (count == 0 && err == 0) break;
      // Stopped from inside the callback: `r` is still allocated (finalizers
      // never run inside a callback), but box->owner is cleared.
      if (!deliver(r, count, err) || box->owner == nullptr) break;
      if (count < r->batch) break;  // drained, or an error ended the batch
    }
  }
  napi_close_handle_scope(env, scope);
}

TunReader* unwrap_this(napi_env env, napi_callback_info info) {
  napi_value self;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, nullptr, nullptr, &self, nullptr) != napi_ok) {
    throw_last_napi_error(env);
    return nullptr;
  }
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    napi_throw_type_error(env, "ERR_INVALID_THIS", "TunReader method called on an object that is not a TunReader");
    return nullptr;
  }
  return static_cast<TunReader*>(data);
}

napi_value js_start(napi_env env, napi_callback_info info) {
  TunReader* r = unwrap_this(env, info);
  if (r == nullptr) return nullptr;
  if (r->box == nullptr) {
    napi_throw_error(env, "ERR_WEFT_READER_STOPPED", "TunReader.start(): the reader was stopped; create a new one");
    return nullptr;
  }
  if (r->started) return nullptr;  // undefined
  int rc = uv_poll_start(&r->box->poll, UV_READABLE, on_poll);
  if (rc != 0) {
    char msg[160];
    snprintf(msg, sizeof(msg), "TunReader.start(): cannot poll fd %d: %s", r->fd, uv_strerror(rc));
    napi_throw_error(env, uv_err_name(rc), msg);
    return nullptr;
  }
  if (napi_reference_ref(env, r->self, nullptr) != napi_ok) {
    uv_poll_stop(&r->box->poll);
    return throw_last_napi_error(env);
  }
  r->started = true;
  return nullptr;
}

napi_value js_stop(napi_env env, napi_callback_info info) {
  TunReader* r = unwrap_this(env, info);
  if (r == nullptr) return nullptr;
  stop(r);
  return nullptr;
}

// The constructor's arguments, checked: new TunReader(fd, slab, slotSize, lengths, onBatch).
struct ReaderArgs {
  int fd = -1;
  size_t slot_size = 0;
  uint32_t batch = 0;  // lengths.length
};

// Checks every argument, before anything is acquired. False with a
// TypeError or RangeError pending, or after a failed N-API call (the caller
// throws).
bool reader_args(napi_env env, napi_value* argv, ReaderArgs* out) {
  double fd, slot_size;
  uint8_t* slab_data;
  size_t slab_len;
  size_t batch = 0;
  void* lengths_data;
  if (!integer_arg(env, argv[0], "fd", 0, INT32_MAX, &fd) || !buffer_arg(env, argv[1], "slab", &slab_data, &slab_len) ||
      !integer_arg(env, argv[2], "slotSize", 1, INT32_MAX, &slot_size) ||
      !typed_array_arg(env, argv[3], napi_uint32_array, "lengths", "Uint32Array", &lengths_data, &batch)) {
    return false;
  }
  if (batch < 1 || batch > UINT32_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "lengths must have at least one element (the batch size)");
    return false;
  }
  // batch <= 2^32 and slot_size < 2^31: the product fits in 64 bits.
  const uint64_t needed = static_cast<uint64_t>(batch) * static_cast<uint64_t>(slot_size);
  if (slab_len < needed) {
    char msg[200];
    snprintf(msg, sizeof(msg), "slab is too small: %zu bytes < lengths.length (%zu) * slotSize (%.0f) = %llu", slab_len,
             batch, slot_size, static_cast<unsigned long long>(needed));
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  if (!typed_arg(env, argv[4], napi_function, "onBatch", "a function")) return false;
  out->fd = static_cast<int>(fd);
  out->slot_size = static_cast<size_t>(slot_size);
  out->batch = static_cast<uint32_t>(batch);
  return true;
}

// Takes what finalize() gives back: strong references to the slab, lengths
// and callback, the weak self reference, and the async context. False after
// a failed N-API call, nothing thrown yet; finalize() releases what was taken.
bool take_references(napi_env env, TunReader* r, napi_value* argv, napi_value self) {
  napi_value resource_name;
  return napi_create_reference(env, argv[1], 1, &r->slab) == napi_ok &&
         napi_create_reference(env, argv[3], 1, &r->lengths) == napi_ok &&
         napi_create_reference(env, argv[4], 1, &r->callback) == napi_ok &&
         napi_create_reference(env, self, 0, &r->self) == napi_ok &&
         napi_create_string_utf8(env, "weft.TunReader", NAPI_AUTO_LENGTH, &resource_name) == napi_ok &&
         napi_async_init(env, self, resource_name, &r->async_context) == napi_ok;
}

// Registers a poll handle for r->fd on Node's loop and links it with r, so
// that stop_polling() releases the box from then on. On failure throws,
// frees the box (never registered) and returns false.
bool attach_poll(napi_env env, TunReader* r, PollBox* box) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    throw_last_napi_error(env);
    delete box;
    return false;
  }
  const int rc = uv_poll_init(loop, &box->poll, r->fd);
  if (rc != 0) {
    char msg[160];
    snprintf(msg, sizeof(msg), "TunReader: cannot poll fd %d: %s", r->fd, uv_strerror(rc));
    napi_throw_error(env, uv_err_name(rc), msg);
    delete box;  // uv_poll_init failed before registering the handle
    return false;
  }
  box->poll.data = box;
  box->owner = r;
  r->box = box;
  return true;
}

napi_value js_construct(napi_env env, napi_callback_info info) {
  napi_value new_target = nullptr;
  if (napi_get_new_target(env, info, &new_target) != napi_ok) return throw_last_napi_error(env);
  if (new_target == nullptr) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "TunReader must be called with new");
    return nullptr;
  }
  napi_value argv[5];
  napi_value self;
  ReaderArgs args;
  if (!get_args(env, info, 5, argv, "TunReader(fd, slab, slotSize, lengths, onBatch)", &self) || !reader_args(env, argv, &args)) {
    return throw_last_napi_error(env);
  }

  // Acquire: references first (undone by finalize()), then the poll handle,
  // then the wrap, after which the finalizer owns everything.
  TunReader* r = new (std::nothrow) TunReader();
  PollBox* box = new (std::nothrow) PollBox();
  if (r == nullptr || box == nullptr) {
    delete r;
    delete box;
    napi_throw_error(env, "ENOMEM", "TunReader: out of memory");
    return nullptr;
  }
  r->env = env;
  r->fd = args.fd;
  r->slot_size = args.slot_size;
  r->batch = args.batch;
  if (!take_references(env, r, argv, self)) {
    throw_last_napi_error(env);
    delete box;
    finalize(env, r, nullptr);
    return nullptr;
  }
  if (!attach_poll(env, r, box)) {
    finalize(env, r, nullptr);
    return nullptr;
  }
  if (napi_add_async_cleanup_hook(env, on_env_cleanup, box, &box->cleanup) != napi_ok ||
      napi_wrap(env, self, r, finalize, nullptr, nullptr) != napi_ok) {
    throw_last_napi_error(env);
    finalize(env, r, nullptr);  // closes the box; on_close removes the hook if added
    return nullptr;
  }
  return self;
}

}  // namespace

napi_value tun_reader_define_class(napi_env env) {
  napi_property_descriptor methods[] = {
      {"start", nullptr, js_start, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"stop", nullptr, js_stop, nullptr, nullptr, nullptr, napi_default_method, nullptr},
  };
  napi_value cls;
  if (napi_define_class(env, "TunReader", NAPI_AUTO_LENGTH, js_construct, nullptr, sizeof(methods) / sizeof(methods[0]),
                        methods, &cls) != napi_ok) {
    return throw_last_napi_error(env);
  }
  return cls;
}

}  // namespace weft
