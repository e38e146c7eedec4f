// Test-addon exports of offload.h and wire.h (tsoSegment, tsoHeaders,
// flowHash, icmpUnreachable, completeChecksum, coalesce), so the unit tests
// exercise the C++ directly, without a TUN. Built only into weft_test.node:
// they allocate per call.
#ifndef WEFT_OFFLOAD_BINDING_H_
#define WEFT_OFFLOAD_BINDING_H_

#include <node_api.h>

namespace weft {

// Adds the functions to `exports`. On failure returns the failing
// status, possibly with a JS exception pending (see throw_last_napi_error).
napi_status init_offload_exports(napi_env env, napi_value exports);

}  // namespace weft

#endif  // WEFT_OFFLOAD_BINDING_H_
