// Node-API exports of the native engine in the production addon
// (createEngine, engineSetRoutes, engineStop, engineInfo, COUNTER_NAMES).
#ifndef WEFT_ENGINE_BINDING_H_
#define WEFT_ENGINE_BINDING_H_

#include <node_api.h>

namespace weft {

// Adds them to `exports`. On failure returns the failing status, possibly
// with a JS exception pending (the caller throws, see throw_last_napi_error).
napi_status init_engine_exports(napi_env env, napi_value exports);

}  // namespace weft

#endif  // WEFT_ENGINE_BINDING_H_
