#!/usr/bin/env bash
# Installs what weft's demo, tests and benchmarks need on a Debian machine,
# as root: Debian packages (etcd, iproute2, iperf3, ping, ethtool, tcpdump, nftables,
# iptables, a C++ toolchain; podman, containerd, runc, containernetworking-plugins and
# busybox-static for the CNI plugin's runtime tests and the demo's containers;
# clang and its runtime libraries for the libFuzzer targets in native/fuzz;
# prometheus for promtool, which lints weftd's /metrics in a test; linux-perf
# for bench/profile.ts; tinc, wireguard-go and wireguard-tools for the other
# tunnels bench/e2e.ts compares weft with; libsodium23, the oracle the
# WireGuard primitives' tests compare XChaCha20-Poly1305 with; libssl-dev,
# the OpenSSL the WireGuard fuzz target links (the addon uses node's own);
# tshark, which the encryption tests decode captured WireGuard with)
# and the npm packages, which also builds the native addons and weftd.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs Debian packages and the lab needs network namespaces)" >&2
  exit 1
fi

need=()
for pair in etcd:etcd-server etcdctl:etcd-client ip:iproute2 iperf3:iperf3 ping:iputils-ping g++:g++ make:make python3:python3 setpriv:util-linux ethtool:ethtool tcpdump:tcpdump systemd-analyze:systemd nft:nftables iptables:iptables \
  podman:podman containerd:containerd runc:runc nsenter:util-linux /usr/lib/cni/bridge:containernetworking-plugins /bin/busybox:busybox-static \
  clang++:clang promtool:prometheus perf:linux-perf tincd:tinc wireguard-go:wireguard-go wg:wireguard-tools tshark:tshark /usr/bin/time:time; do
  what=${pair%%:*}
  case $what in
    /*) [ -x "$what" ] || need+=("${pair#*:}") ;;
    *) command -v "$what" >/dev/null 2>&1 || need+=("${pair#*:}") ;;
  esac
done
# Libraries, not commands: libFuzzer's runtime (clang's compiler-rt), libsodium, OpenSSL's headers and libcrypto.so.
for lib in libclang-rt-14-dev libsodium23 libssl-dev; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: weft needs Node.js 20 or later on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if [ ! -d /usr/include/node ]; then
  echo "setup: Node's headers are missing from /usr/include/node (the native addon builds against them)" >&2
  exit 1
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f native/build/Release/weft.node ] || [ ! -f native/build/Release/weft_test.node ]; then
  echo "setup: npm ci (builds the native addons and weftd)"
  npm ci --no-audit --no-fund --loglevel=error
fi
