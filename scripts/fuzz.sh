#!/usr/bin/env bash
# A fuzzing campaign outside CI (CI runs each target for PARETO_FUZZ_RUNS executions through ctest;
# see docs/fuzzing.md). Builds the libFuzzer targets under ASan + UBSan, then runs each for RUNS
# executions from a scratch copy of the corpus kept in tests/fuzz/corpus/<target> (the source tree
# is never written), with tests/fuzz/gguf.dict for the GGUF reader. Prints, per target, the
# executions, libFuzzer's coverage (cov: edges reached, ft: features), the corpus size and the
# crash inputs, which stay in OUT/<target>/crashes/ for the fix and its regression test.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/fuzz.sh [RUNS] [TARGET...]
  RUNS     executions per target (a whole number; default 1000000)
  TARGET   gguf, llama2c, tokenizer, chat_template or openai_request (default: all, one after
           the other)
environment:
  PARETO_SHARED  shared test data, for the tokenizer target's vocabularies (default ../shared)
  BUILD_DIR      sanitizer build folder (default build-asan; configured with PARETO_FUZZ=ON)
  OUT            campaign folder (default BUILD_DIR/fuzz-campaign; emptied per target at its start)
  JOBS           build parallelism (default: nproc)
EOF
}

case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
esac
cd "$(dirname "$0")/.."
RUNS="${1:-1000000}"
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: RUNS must be a positive whole number, got '$RUNS'" >&2
  usage >&2
  exit 2
fi
[ $# -gt 0 ] && shift
ALL=(gguf llama2c tokenizer chat_template openai_request)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  if [[ " ${ALL[*]} " != *" $t "* ]]; then
    echo "fuzz.sh: unknown target '$t' (known: ${ALL[*]})" >&2
    usage >&2
    exit 2
  fi
done
export PARETO_SHARED="${PARETO_SHARED:-$(cd .. && pwd)/shared}"
BUILD_DIR="${BUILD_DIR:-build-asan}"
OUT="${OUT:-$BUILD_DIR/fuzz-campaign}"
JOBS="${JOBS:-$(nproc)}"
if [[ " ${TARGETS[*]} " == *" tokenizer "* && ! -d "$PARETO_SHARED/vocab" ]]; then
  echo "fuzz.sh: shared test data not found at $PARETO_SHARED (set PARETO_SHARED)" >&2
  exit 1
fi

bash scripts/install-deps.sh
echo "== building the fuzz targets in $BUILD_DIR (clang, ASan + UBSan) =="
mkdir -p "$BUILD_DIR"
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPARETO_SANITIZE=ON -DPARETO_FUZZ=ON > "$BUILD_DIR/fuzz-configure.log"
cmake --build "$BUILD_DIR" -j"$JOBS" --target "${TARGETS[@]/#/fuzz_}"

# Leaks fail a run as crashes do; UB stops at the first report (the build sets
# -fno-sanitize-recover too) so each finding leaves an input behind.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
summary=()
found=()
for t in "${TARGETS[@]}"; do
  dir="$OUT/$t"
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/crashes"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  kept=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
  flags=(-runs="$RUNS" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$dir/crashes/")
  [ "$t" = gguf ] && flags+=(-dict=tests/fuzz/gguf.dict)
  [ "$t" = chat_template ] && flags+=(-dict=tests/fuzz/chat_template.dict)
  echo "== fuzz_$t: $RUNS executions from $kept kept inputs (log: $dir/fuzz.log) =="
  start=$(date +%s)
  rc=0
  "$BUILD_DIR/tests/fuzz/fuzz_$t" "${flags[@]}" "$dir/corpus" > "$dir/fuzz.log" 2>&1 || rc=$?
  secs=$(($(date +%s) - start))
  # libFuzzer's last status line ("#N DONE cov: C ft: F corp: ...", or the last before a crash).
  last=$(grep -E '^#[0-9]+' "$dir/fuzz.log" | tail -1 || true)
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$dir/fuzz.log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<< "$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<< "$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<< "$last")
  files=$(find "$dir/corpus" -type f | wc -l)
  # Slow units are reported, not failures; everything else libFuzzer leaves is a finding.
  crashes=$(find "$dir/crashes" -type f ! -name 'slow-unit-*' | wc -l)
  # corpus: the inputs libFuzzer keeps (corp:); files: what its folder holds, replaced inputs too.
  line=$(printf '%-10s rc %-3s executions %-8s cov %-5s ft %-5s corpus %-4s files %-4s' \
    "$t" "$rc" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$files")
  line+=" crashes $crashes (${secs}s)"
  echo "$line"
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    found+=("$t")
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$dir/fuzz.log" | head -5 >&2 || true
  fi
done

echo
echo "== summary (RUNS=$RUNS) =="
printf '%s\n' "${summary[@]}"
if [ ${#found[@]} -gt 0 ]; then
  echo
  echo "findings in: ${found[*]}. For each input in $OUT/<target>/crashes/:"
  echo "  reproduce: $BUILD_DIR/tests/fuzz/fuzz_<target> <input>"
  echo "  fix the library, then add the input to tests/fuzz/corpus/<target>/ as a regression input"
  echo "  (and a unit test for the bug); see docs/fuzzing.md."
  exit 1
fi
