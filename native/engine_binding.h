// Node-API exports of the native engine (createEngine, engineSetRoutes,
// engineStop, engineInfo, COUNTER_NAMES) and its in-process test and
// benchmark entry points (classifyBatch, benchEncap).
#ifndef WEFT_ENGINE_BINDING_H_
#define WEFT_ENGINE_BINDING_H_

#include <node_api.h>

namespace weft {

napi_status init_engine_exports(napi_env env, napi_value exports);

}  // namespace weft

#endif  // WEFT_ENGINE_BINDING_H_
