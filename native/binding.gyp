# The two N-API addons, built by `npm run build:native` into native/build/Release/:
#   weft.node       the production addon weftd loads (src/host/addon.ts): TUN, the engine, host calls.
#   weft_test.node  entry points only tests and benchmarks call (test/harness/test_addon.ts):
#                   the offload code, the per-packet decisions in-process, the shared constants.
{
  "variables": {
    # The pure C++ both addons (and native/fuzz) compile: no syscalls, no Node-API
    # (the WireGuard crypto calls the OpenSSL node exports; the fuzzers link libcrypto).
    "packet_sources": ["checksum.cc", "offload.cc", "routes.cc", "wg_crypto.cc", "wg_keypair.cc"],
    # Node-API helpers both addons' bindings use.
    "binding_sources": ["napi_util.cc", "routes_binding.cc"]
  },
  "target_defaults": {
    # Pin the Node-API level we rely on (async cleanup hooks need 8).
    "defines": ["NAPI_VERSION=8"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"]
  },
  "targets": [
    {
      "target_name": "weft",
      "sources": ["<@(packet_sources)", "<@(binding_sources)", "binding.cc", "tun_linux.cc", "tun_reader.cc", "udp_linux.cc",
                  "dataplane.cc", "inside_batch.cc", "outside_batch.cc", "wg_batch.cc", "engine_binding.cc", "sd_notify.cc", "path_mtu.cc",
                  "netlink.cc"]
    },
    {
      "target_name": "weft_test",
      "sources": ["<@(packet_sources)", "<@(binding_sources)", "test_binding.cc", "offload_binding.cc", "engine_test_binding.cc", "wg_test_binding.cc"]
    }
  ]
}
