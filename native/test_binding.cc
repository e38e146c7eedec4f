// Module init of the test addon, native/build/Release/weft_test.node: the
// entry points only tests and benchmarks call (offload_binding.cc,
// engine_test_binding.cc, wg_test_binding.cc). weftd never loads it; test/harness/test_addon.ts does.
#include <node_api.h>

#include "engine_test_binding.h"
#include "napi_util.h"
#include "offload_binding.h"
#include "wg_test_binding.h"

NAPI_MODULE_INIT() {
  if (weft::init_offload_exports(env, exports) != napi_ok || weft::init_engine_test_exports(env, exports) != napi_ok ||
      weft::init_wg_test_exports(env, exports) != napi_ok) {
    return weft::throw_last_napi_error(env);
  }
  return exports;
}
