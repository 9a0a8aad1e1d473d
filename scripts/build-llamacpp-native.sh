#!/usr/bin/env bash
# Builds the reference llama.cpp for speed comparisons: the source npm's node-llama-cpp@3.22.1
# ships (llama/gitRelease.bundle, build de3ff81, the one behind ../shared/oracle), compiled for
# this CPU (-DGGML_NATIVE=ON, Release) in a cache folder outside the repository. Builds the tools
# the comparison scripts run: llama-bench (scripts/bench-vs-llamacpp.sh with LLAMA_BENCH),
# llama-speculative-simple and llama-quantize (scripts/bench-spec-vs-llamacpp.sh),
# llama-batched-bench and llama-server (the serving comparisons). Prints the bin folder.
#
# usage: scripts/build-llamacpp-native.sh
# env:   LLAMACPP_CACHE (~/.cache/llama.cpp), JOBS (nproc)
set -euo pipefail

cache=${LLAMACPP_CACHE:-$HOME/.cache/llama.cpp}
jobs=${JOBS:-$(nproc)}
mkdir -p "$cache"
bundle=$cache/package/llama/gitRelease.bundle
if [[ ! -f $bundle ]]; then
  # The npm registry's tarball (no build scripts run): package/llama/gitRelease.bundle.
  (cd "$cache" && npm pack --silent node-llama-cpp@3.22.1 > /dev/null &&
    tar xzf node-llama-cpp-3.22.1.tgz)
fi
if [[ ! -d $cache/src/.git ]]; then
  git -c advice.detachedHead=false clone -q "$bundle" "$cache/src"
fi
echo "llama.cpp source: $(git -C "$cache/src" log --oneline -1 | cut -c1-40)" >&2
cmake -S "$cache/src" -B "$cache/build-native" -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF > "$cache/configure.log" 2>&1 ||
  { echo "error: cmake configure failed, see $cache/configure.log" >&2; exit 1; }
cmake --build "$cache/build-native" -j "$jobs" --target llama-bench llama-batched-bench \
  llama-server llama-quantize llama-speculative-simple > "$cache/build.log" 2>&1 ||
  { echo "error: build failed, see $cache/build.log" >&2; tail -20 "$cache/build.log" >&2; exit 1; }
echo "$cache/build-native/bin"
