#!/usr/bin/env bash
# Several `pareto serve` configurations on one model, measured side by side: every server runs at
# once (an idle one costs nothing) and each round visits the concurrency levels, each level the
# servers in a shuffled order, so that a machine whose speed drifts over minutes (a shared VM)
# drifts under all of them alike. Prints per level the median tok/s over the rounds and the median
# ratio to the first configuration measured in the same round.
#
# usage: scripts/bench-serve-configs.sh MODEL THREADS WORKLOAD.jsonl LABEL=FLAGS [LABEL=FLAGS ...]
#   e.g. scripts/bench-serve-configs.sh pycode7m.gguf 2 code.jsonl plain= \
#          'ngram=--spec ngram' 'ngram-always=--spec ngram --spec-max-batch 0'
# env:   ROUNDS (3), CONCURRENCY ("1 4 8 16"), PARALLEL (16), CTX (1024: context per sequence; KV
#        for PARALLEL x CTX tokens), REQUESTS (per level, 48), MAX_TOKENS (the workload's),
#        PARETO_BIN (build/tools/pareto)
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 MODEL THREADS WORKLOAD.jsonl LABEL=FLAGS [LABEL=FLAGS ...]" >&2
  exit 2
fi
model=$1 threads=$2 workload=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
pareto=${PARETO_BIN:-$root/build/tools/pareto}
rounds=${ROUNDS:-3}
levels=${CONCURRENCY:-1 4 8 16}
parallel=${PARALLEL:-16}
ctx=${CTX:-1024}
out=$(mktemp -d)
[[ -x $pareto ]] || { echo "error: $pareto not built (set PARETO_BIN)" >&2; exit 1; }

labels=() ports=() pids=()
stop_all() { [[ ${#pids[@]} -gt 0 ]] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap stop_all EXIT
port=$((20000 + RANDOM % 2000))
for spec in "$@"; do
  label=${spec%%=*} flags=${spec#*=}
  port=$((port + 1))
  # shellcheck disable=SC2086
  "$pareto" serve -m "$model" --port "$port" -t "$threads" --parallel "$parallel" -c "$ctx" \
    --kv-tokens $((parallel * ctx)) $flags 2> "$out/$label.log" &
  pids+=($!) labels+=("$label") ports+=("$port")
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break; sleep 0.1; done
done
lscpu | grep -E '^(Model name|CPU\(s\)|Vendor ID|CPU family|Model):' >&2
extra=(--requests "${REQUESTS:-48}")
[[ -n ${MAX_TOKENS:-} ]] && extra+=(--max-tokens "$MAX_TOKENS")
for ((r = 1; r <= rounds; r++)); do
  for level in $levels; do
    for i in $(seq 0 $((${#labels[@]} - 1)) | shuf); do
      node "$root/scripts/bench-serve.mjs" --url "http://127.0.0.1:${ports[$i]}" \
        --workload "$workload" --concurrency "$level" "${extra[@]}" \
        --json "$out/${labels[$i]}-$r-$level.json" > /dev/null
    done
  done
  echo "== round $r/$rounds done" >&2
done
for i in $(seq 0 $((${#labels[@]} - 1))); do
  echo "${labels[$i]}: $(curl -s "http://127.0.0.1:${ports[$i]}/metrics" |
    grep -E '^pareto_spec_decode_steps' | tr '\n' ' ')" >&2
done
python3 - "$out" "$rounds" "$levels" "${labels[@]}" <<'PY'
import json, statistics, sys
out, rounds, levels, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
tps = lambda label, r, level: json.load(open(f"{out}/{label}-{r}-{level}.json"))["levels"][0]["throughput"]
print("| streams | " + " | ".join(labels) + " |")
print("|---:|" + "---:|" * len(labels))
for level in levels:
    cells = []
    for label in labels:
        t = [tps(label, r, level) for r in range(1, rounds + 1)]
        ratio = [tps(label, r, level) / tps(labels[0], r, level) for r in range(1, rounds + 1)]
        cells.append(f"{statistics.median(t):.0f} ({statistics.median(ratio):.2f}x)")
    print(f"| {level} | " + " | ".join(cells) + " |")
PY
