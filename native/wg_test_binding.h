// Test-addon exports of the engine's WireGuard per-packet code (wgSeal,
// wgAccept): see wg_test_binding.cc. Not in weft.node.
#ifndef WEFT_WG_TEST_BINDING_H_
#define WEFT_WG_TEST_BINDING_H_

#include <node_api.h>

namespace weft {

// Adds them to `exports`. On failure returns the failing status, possibly
// with a JS exception pending (the caller throws, see throw_last_napi_error).
napi_status init_wg_test_exports(napi_env env, napi_value exports);

}  // namespace weft

#endif  // WEFT_WG_TEST_BINDING_H_
