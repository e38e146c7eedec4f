// JS route tables and subnets to their C++ form, for both addons' bindings
// (the engine's createEngine/engineSetRoutes and the test addon's in-process
// entry points). Like napi_util.h, a failure leaves a JS exception pending.
#ifndef WEFT_ROUTES_BINDING_H_
#define WEFT_ROUTES_BINDING_H_

#include <functional>
#include <memory>

#include <node_api.h>

#include "outside.h"
#include "routes.h"

namespace weft {

// routes: { netBase, netLen, subnetLen, plaintextRefused, slots: Int32Array, peerIp: Uint32Array, peerPort: Uint16Array,
//   peerWgPort: Uint16Array, peerFlags: Uint8Array }
// (RouteTable.arrays()); nullptr with a TypeError or RangeError pending when malformed.
std::unique_ptr<RouteTable> routes_arg(napi_env env, napi_value obj);

// The WireGuard part of a table, wg: { mac1Key: Uint8Array(32), padLimit,
// slots: Uint32Array(3 per peer: next, current and previous keypair's local
// index, 0 for none) }, into t->wg, t->mac1_key and t->pad_limit; the keypairs
// come from `keypair` (nullptr: not installed, left out). False with an
// exception pending when malformed.
bool wg_sessions_arg(napi_env env, napi_value wg, const std::function<std::shared_ptr<Keypair>(uint32_t)>& keypair, RouteTable* t);

// A 32-byte WireGuard key argument (a Buffer) as a pointer into it; false with an exception pending otherwise.
bool wg_key_arg(napi_env env, napi_value v, const char* what, uint8_t** key);

// The subnet base/len (len in [0, 32], already checked) as base and mask.
SelfSubnet self_arg(double base, double len);

}  // namespace weft

#endif  // WEFT_ROUTES_BINDING_H_
