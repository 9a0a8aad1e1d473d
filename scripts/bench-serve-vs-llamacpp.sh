#!/usr/bin/env bash
# pareto serve vs llama.cpp's llama-server on one GGUF file: the same threads, parallel sequences
# and KV memory, the same workload at each concurrency (scripts/bench-serve.mjs, which runs
# unchanged against either), servers alternated per round so that both see the same machine.
#
# usage: scripts/bench-serve-vs-llamacpp.sh MODEL THREADS WORKLOAD.jsonl
# env:   CONCURRENCY (1,4,8,16), PARALLEL (16: sequences decoded together), CTX (512: context per
#        sequence; both servers get PARALLEL x CTX tokens of KV), ROUNDS (1), REQUESTS (per level;
#        default max(2 x concurrency, prompts)), MAX_TOKENS (the workload's), PREFIX (0; N: also
#        the TTFT of a request sharing an N-token prefix, against a cold one),
#        PARETO_ARGS (extra `pareto serve` flags, e.g. "--spec ngram"),
#        PARETO_BIN (build/tools/pareto), LLAMACPP_BIN (~/.cache/llama.cpp/build-native/bin:
#        llama.cpp de3ff81 built natively, target llama-server)
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 MODEL THREADS WORKLOAD.jsonl" >&2
  exit 2
fi
model=$1
threads=$2
workload=$3
root=$(cd "$(dirname "$0")/.." && pwd)
pareto=${PARETO_BIN:-$root/build/tools/pareto}
bin=${LLAMACPP_BIN:-$HOME/.cache/llama.cpp/build-native/bin}
concurrency=${CONCURRENCY:-1,4,8,16}
parallel=${PARALLEL:-16}
ctx=${CTX:-512}
rounds=${ROUNDS:-1}
prefix=${PREFIX:-0}
[[ -x $pareto ]] || { echo "error: $pareto not built (set PARETO_BIN)" >&2; exit 1; }
[[ -x $bin/llama-server ]] || { echo "error: $bin/llama-server not built (set LLAMACPP_BIN)" >&2; exit 1; }

port=$((18000 + RANDOM % 2000))
extra=()
[[ -n ${REQUESTS:-} ]] && extra+=(--requests "$REQUESTS")
[[ -n ${MAX_TOKENS:-} ]] && extra+=(--max-tokens "$MAX_TOKENS")
pid=
stop_server() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
trap stop_server EXIT
wait_ready() {
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "error: server on port $port never became ready" >&2
  exit 1
}
measure() {  # label
  node "$root/scripts/bench-serve.mjs" --url "http://127.0.0.1:$port" --workload "$workload" \
    --concurrency "$concurrency" --label "$1" "${extra[@]}"
  if [[ $prefix != 0 ]]; then
    node "$root/scripts/bench-serve.mjs" --url "http://127.0.0.1:$port" --workload "$workload" \
      --prefix-test "$prefix" --label "$1"
  fi
}
run_pareto() {
  port=$((port + 1))  # a fresh port: the last server's closed connections may hold the old one
  # shellcheck disable=SC2086
  "$pareto" serve -m "$model" --port "$port" -t "$threads" --parallel "$parallel" -c "$ctx" \
    --kv-tokens $((parallel * ctx)) ${PARETO_ARGS:-} 2> /tmp/bench-serve-pareto.log &
  pid=$!
  wait_ready
  measure pareto
  stop_server
}
run_llamacpp() {
  port=$((port + 1))
  # Unified KV (one pool for all slots, as Pareto's) of the same size; continuous batching is on
  # by default.
  "$bin/llama-server" -m "$model" --port "$port" --host 127.0.0.1 -t "$threads" -tb "$threads" \
    -np "$parallel" -c $((parallel * ctx)) -kvu 2> /tmp/bench-serve-llamacpp.log &
  pid=$!
  wait_ready
  measure llama-server
  stop_server
}
lscpu | grep -E '^(Model name|CPU\(s\)|Vendor ID|CPU family|Model):' >&2
for ((round = 1; round <= rounds; round++)); do
  echo "== round $round/$rounds" >&2
  if ((round % 2 == 1)); then run_pareto; run_llamacpp; else run_llamacpp; run_pareto; fi
done
