#!/usr/bin/env bash
# Speculative decoding, Pareto vs llama.cpp, on one target/draft pair and the same prompts, in one
# session: llama.cpp's llama-speculative-simple (draft-simple with the draft model, ngram-simple)
# per prompt, summing decoded tokens and seconds, and llama-bench's plain tg; then
# `pareto bench spec` (plain and every strategy, interleaved prompt by prompt). Greedy.
#
# usage: scripts/bench-spec-vs-llamacpp.sh TARGET DRAFT WORKLOAD.jsonl THREADS
# env:   N_PROMPTS (12) first prompts of the workload, N_PREDICT (96), N_MAX (8) longest draft,
#        LLAMACPP_BIN (~/.cache/llama.cpp/build-native/bin: llama.cpp de3ff81 built natively,
#        targets llama-speculative-simple and llama-bench), PARETO_BIN (build/tools/pareto),
#        DRAFT_TYPE (unset: the draft file as it is; q8_0 / q4_0: Pareto converts the draft at
#        load with --draft-type, llama.cpp gets the file llama-quantize (LLAMACPP_BIN) writes from
#        it, the same weights: tests/model/weight_type_test.cpp)
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 TARGET DRAFT WORKLOAD.jsonl THREADS" >&2
  exit 2
fi
target=$1 draft=$2 workload=$3 threads=$4
root=$(cd "$(dirname "$0")/.." && pwd)
pareto=${PARETO_BIN:-$root/build/tools/pareto}
bin=${LLAMACPP_BIN:-$HOME/.cache/llama.cpp/build-native/bin}
n_prompts=${N_PROMPTS:-12}
n_predict=${N_PREDICT:-96}
n_max=${N_MAX:-8}
for tool in llama-speculative-simple llama-bench; do
  [[ -x $bin/$tool ]] || { echo "error: $bin/$tool not built (set LLAMACPP_BIN)" >&2; exit 1; }
done
[[ -x $pareto ]] || { echo "error: $pareto not built (set PARETO_BIN)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pareto_draft=(--draft-model "$draft")
if [[ -n ${DRAFT_TYPE:-} ]]; then
  [[ -x $bin/llama-quantize ]] || { echo "error: $bin/llama-quantize not built" >&2; exit 1; }
  "$bin/llama-quantize" "$draft" "$tmp/draft.gguf" "${DRAFT_TYPE^^}" > "$tmp/quantize.txt" 2>&1 ||
    { echo "error: llama-quantize failed:" >&2; tail -5 "$tmp/quantize.txt" >&2; exit 1; }
  pareto_draft+=(--draft-type "$DRAFT_TYPE")
  draft=$tmp/draft.gguf  # llama.cpp's copy
fi
python3 - "$workload" "$n_prompts" "$tmp" <<'PY'
import json, sys
path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i, line in enumerate(l for l in open(path) if l.strip()):
    if i >= n: break
    open(f"{out}/prompt{i:03d}.txt", "w").write(json.loads(line)["prompt"])
PY

# llama.cpp: one process per prompt and mode; "decoded N tokens in S seconds" and the acceptance.
llamacpp_mode() {  # name, extra args...
  local name=$1; shift
  local tokens=0 seconds=0 drafted=0 accepted=0
  for p in "$tmp"/prompt*.txt; do
    # llama-speculative-simple (de3ff81) now and then exits 0 without its summary line (seen with
    # ngram-simple, not reproducible by hand): up to 3 tries.
    local line="" try
    for try in 1 2 3; do
      if ! "$bin/llama-speculative-simple" -m "$target" -p "$(cat "$p")" -n "$n_predict" \
          -t "$threads" --temp 0 -c 512 --spec-draft-n-max "$n_max" "$@" > "$tmp/out.txt" 2>&1; then
        echo "error: llama-speculative-simple failed ($name, $p):" >&2; tail -5 "$tmp/out.txt" >&2; exit 1
      fi
      line=$(sed -n 's/.*decoded *\([0-9]*\) tokens in *\([0-9.]*\) seconds.*/\1 \2/p' "$tmp/out.txt")
      [[ -n $line ]] && break
      echo "note: no summary line from llama-speculative-simple ($name, $p), try $try" >&2
    done
    if [[ -z $line ]]; then
      echo "error: no 'decoded N tokens in S seconds' line ($name, $p):" >&2
      tail -5 "$tmp/out.txt" >&2
      exit 1
    fi
    local t=${line% *} s=${line#* }
    d=$(sed -n 's/.*n_drafted *= *\([0-9]*\).*/\1/p' "$tmp/out.txt")
    a=$(sed -n 's/.*n_accept *= *\([0-9]*\).*/\1/p' "$tmp/out.txt")
    tokens=$((tokens + t)); drafted=$((drafted + ${d:-0})); accepted=$((accepted + ${a:-0}))
    seconds=$(python3 -c "print($seconds + $s)")
  done
  python3 -c "t,s,d,a=$tokens,$seconds,$drafted,$accepted; print(f'| llama.cpp $name | {t/s:.1f} | {100*a/max(d,1):.1f}% |')"
}

echo "target $target, draft ${pareto_draft[*]:1}, $n_prompts prompts of $workload, $n_predict tokens, $threads threads, greedy"
echo
echo "| engine / strategy | tok/s | acceptance |"
echo "|---|---:|---:|"
tg=$("$bin/llama-bench" -m "$target" -p 0 -n "$n_predict" -t "$threads" -r 5 -o json 2>/dev/null |
     python3 -c "import json,sys; print(json.load(sys.stdin)[0]['avg_ts'])")
printf '| llama.cpp plain (llama-bench tg%s) | %.1f | - |\n' "$n_predict" "$tg"
llamacpp_mode "draft-simple (n-max $n_max)" -md "$draft" --spec-type draft-simple
llamacpp_mode "ngram-simple" --spec-type ngram-simple
echo
"$pareto" bench spec -m "$target" "${pareto_draft[@]}" --workload "$workload" \
  --max-prompts "$n_prompts" -n "$n_predict" -t "$threads" --draft-max "$n_max"
