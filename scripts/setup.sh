#!/usr/bin/env bash
# Fresh Debian 12 machine -> built Pareto, ending with a short generation by the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
export PARETO_SHARED="${PARETO_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${JOBS:-$(nproc)}"

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$JOBS" --target pareto

echo
echo "== pareto run (default model: \$PARETO_SHARED/models/stories260K/stories260K.gguf) =="
./build/tools/pareto run -p "Once upon a time" -n 48 --temp 0
