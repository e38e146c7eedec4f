// Test-addon exports of the engine's per-packet code (classifyBatch,
// benchEncap, CONSTANTS) and the argument unpacking they share with
// wg_test_binding.cc: see engine_test_binding.cc. Not in weft.node.
#ifndef WEFT_ENGINE_TEST_BINDING_H_
#define WEFT_ENGINE_TEST_BINDING_H_

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <vector>

#include <node_api.h>

#include "outside.h"
#include "routes.h"

namespace weft {

// The arguments the in-process entry points share (classifyBatch,
// benchEncap, wgAccept): a route table, this node ({ base, len, vni }; vni
// only where `with_vni`), packets (Buffer[], borrowed for the call, written
// in place by wgAccept) and one outer source address per packet.
struct PacketBatch {
  std::unique_ptr<RouteTable> table;
  SelfSubnet self{0, 0};
  uint32_t vni = 0;
  std::vector<uint8_t*> packets;
  std::vector<size_t> lengths;
  const uint32_t* outer_src = nullptr;
};

// Unpacks them into *b: false with a JS exception pending when malformed.
bool batch_args(napi_env env, napi_value routes, napi_value self, napi_value packets, napi_value outer_src, bool with_vni, PacketBatch* b);

// Adds them to `exports`. On failure returns the failing status, possibly
// with a JS exception pending (the caller throws, see throw_last_napi_error).
napi_status init_engine_test_exports(napi_env env, napi_value exports);

}  // namespace weft

#endif  // WEFT_ENGINE_TEST_BINDING_H_
