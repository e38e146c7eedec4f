# The weft N-API addon: native/build/Release/weft.node, built by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "weft",
      "sources": ["binding.cc", "napi_util.cc", "tun_linux.cc", "tun_reader.cc", "checksum.cc", "offload.cc", "offload_binding.cc", "routes.cc", "udp_linux.cc", "dataplane.cc", "inside_batch.cc", "outside_batch.cc", "engine_binding.cc", "sd_notify.cc", "path_mtu.cc", "link_conf.cc"],
      # Pin the Node-API level we rely on (async cleanup hooks need 8).
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
