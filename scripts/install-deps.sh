#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 (bookworm) packages. Idempotent: does
# nothing when all are present. Needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev       # sanitizer + libFuzzer build
  libexpected-dev                # tl::expected: Result<T>
  nlohmann-json3-dev             # JSON (oracle files, --json output)
  libcli11-dev                   # command-line parsing
  libpcre2-dev                   # Unicode regexes for BPE pre-tokenizers
  libgtest-dev libgmock-dev      # unit tests
  libbenchmark-dev               # kernel micro-benchmarks
  g++-aarch64-linux-gnu qemu-user  # ARM (NEON) kernels: cross-built and tested under emulation
  libcpp-httplib-dev             # HTTP server (pareto serve) and the test client
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm run the official openai client against the server (a machine that already has
# a newer Node.js from elsewhere keeps it).
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
