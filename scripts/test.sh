#!/usr/bin/env bash
# Builds what the tests need and runs the whole suite through ctest:
#   1. a sanitizer build (clang, ASan + UBSan) of the unit tests plus the libFuzzer targets, run for a
#      bounded number of iterations, and the llama.cpp differential tests (clang-compiled kernels
#      must reproduce llama.cpp bit for bit too);
#   2. the Release build and its full suite (fidelity against llama.cpp included);
#   3. the kernels and their tests cross-compiled for 64-bit ARM (NEON) and run under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
export PARETO_SHARED="${PARETO_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${JOBS:-$(nproc)}"

if [ ! -d "$PARETO_SHARED/models" ]; then
  echo "test.sh: shared test data not found at $PARETO_SHARED (set PARETO_SHARED)" >&2
  exit 1
fi

bash scripts/install-deps.sh

echo "== sanitizer build (ASan + UBSan, libFuzzer) =="
# The pareto CLI and the kernel micro-benchmarks are built and tested in the Release build only:
# the CLI is a thin layer over the libraries, whose own tests and fuzzers run here, and leaving it
# out saves about 80 s of CI's 20 minutes.
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPARETO_SANITIZE=ON -DPARETO_FUZZ=ON -DPARETO_BUILD_TOOLS=OFF -DPARETO_BUILD_BENCHMARKS=OFF \
  > build-asan.configure.log
cmake --build build-asan -j"$JOBS"
# The negative controls (every other kernel order, or an F32 cache, must fail each llama.cpp
# reference) run in the Release build only: they re-run whole models in other orders to show the
# references discriminate, which says nothing about memory safety, and under ASan they took about
# 2 of CI's 20 minutes (231 s of 436 s of ASan test time, run 2 at a time). Every positive
# differential test still runs here. So does every speculative-decoding test but the sampled
# distribution one (15 s under ASan: 2000 sampled requests, a statistical claim; the rejection
# step it relies on runs under ASan in RejectionSampling.*).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$JOBS" \
  -E 'OtherOrdersFail|OracleControls|F16KvControls|SampledOutputFollowsPlainSamplings'

echo "== npm: the official openai client, for the server test (tests/serve/openai-client) =="
(cd tests/serve/openai-client && npm ci --no-audit --no-fund --loglevel=error)

echo "== Release build =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > build.configure.log
cmake --build build -j"$JOBS"
ctest --test-dir build --output-on-failure --no-tests=error -j"$JOBS"

echo "== aarch64: kernels, model and logits oracle (cross-compiled, run under qemu-user) =="
cmake -S tests/aarch64 -B build-aarch64 -G Ninja \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchain-aarch64-linux-gnu.cmake" > build-aarch64.configure.log
cmake --build build-aarch64 -j"$JOBS"
# The whole-model references of the AVX-512 and AMX builds' orders are left out under emulation
# (about 30 s of CI): the NEON forms of every order are checked bit for bit against the lane loops
# here (FloatNeon.*, QuantNeon.*), the x86 builds check those orders against the same references,
# and ARM's default order keeps its whole-model references (SharedOracle, Avx2Reference).
ctest --test-dir build-aarch64 --output-on-failure --no-tests=error -j"$JOBS" \
  -E '^(Avx512Reference|AmxReference)/'
