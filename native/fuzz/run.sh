#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer, UndefinedBehaviorSanitizer)
# and runs each for SECONDS (default 60) from its committed seed corpus.
# New inputs go to a temporary corpus, never into the committed one; a crash,
# leak or sanitizer report fails the run and names the input that caused it.
#   bash native/fuzz/run.sh [SECONDS] [TARGET...]     (npm run fuzz)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(outside inside wireguard)
cxx=$(command -v clang++ || true)
if [ -z "$cxx" ]; then
  echo "fuzz: clang++ is not installed (bash test/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p build
srcs=(../checksum.cc ../offload.cc ../routes.cc ../wg_crypto.cc ../wg_keypair.cc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  bin="build/fuzz_$t"
  "$cxx" -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Wall -Wextra -o "$bin" "fuzz_$t.cc" "${srcs[@]}" -lcrypto
  mkdir -p "$work/$t"
  echo "fuzz: $t for ${seconds}s"
  if ! UBSAN_OPTIONS=print_stacktrace=1 "./$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/$t-" "$work/$t" "corpus/$t" > "$work/$t.log" 2>&1; then
    tail -n 60 "$work/$t.log" >&2
    for a in "$work/$t-"*; do [ -f "$a" ] && { echo "fuzz: $t failed on input (hex):" >&2; od -An -tx1 "$a" | head -20 >&2; }; done
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^#[0-9]+.*DONE' "$work/$t.log" | sed "s/^/fuzz: $t: /"
done
