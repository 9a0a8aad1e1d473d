#!/usr/bin/env bash
# Pareto vs llama.cpp on one GGUF file, A/B alternated in one session so that both see the same
# machine state; prints each run's JSON and the Pareto/llama.cpp ratios. llama.cpp is either a
# native build's llama-bench (LLAMA_BENCH=path: the figures to quote, built with -DGGML_NATIVE=ON
# from node-llama-cpp 3.22.1's llama/gitRelease.bundle) or node-llama-cpp's prebuilt CPU build
# through bench/llamacpp/bench.mjs (the default; it needs no build).
# The engine that runs first alternates: odd rounds run Pareto first, even rounds llama.cpp first
# (until 2026-12-04 Pareto ran first in every round), so use an even ROUNDS for a balanced order.
#
# usage: scripts/bench-vs-llamacpp.sh MODEL THREADS
# env:   PP (512), TG (128), REPS (5) per run, ROUNDS (2) A/B rounds,
#        PARETO_BIN (build/tools/pareto), BANDWIDTH_MIB (1024; 0 skips the probe),
#        DEPTH (0: tokens in the cache before each test, llama-bench -d),
#        FA (0; 1: flash attention in both engines: Pareto's online softmax, llama.cpp's -fa),
#        LLAMA_BENCH (unset: node-llama-cpp; else the path of a native llama-bench, run with -fa 0
#        or -fa 1 as FA says: its own default, auto, turns flash attention on for the CPU)
# needs: `npm install` once in bench/llamacpp (npm 11's `npm ci` rejects the lock: node-llama-cpp lists
#        optional per-platform packages that the npm registry here answers 404 for at 3.22.1, so the lock cannot hold them).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 MODEL THREADS" >&2
  exit 2
fi
model=$1
threads=$2
root=$(cd "$(dirname "$0")/.." && pwd)
pareto=${PARETO_BIN:-$root/build/tools/pareto}
pp=${PP:-512}
tg=${TG:-128}
reps=${REPS:-5}
rounds=${ROUNDS:-2}
bandwidth_mib=${BANDWIDTH_MIB:-1024}
depth=${DEPTH:-0}
pareto_fa=()
llamacpp_fa=()
if [[ ${FA:-0} == 1 ]]; then
  pareto_fa=(--flash-attn)
  llamacpp_fa=(--flash-attn)
fi
driver=$root/bench/llamacpp/bench.mjs

[[ -x $pareto ]] || { echo "error: $pareto not built (set PARETO_BIN)" >&2; exit 1; }
llama_bench=${LLAMA_BENCH:-}
if [[ -n $llama_bench ]]; then
  [[ -x $llama_bench ]] || { echo "error: LLAMA_BENCH=$llama_bench is not an executable" >&2; exit 1; }
else
  [[ -d $root/bench/llamacpp/node_modules/node-llama-cpp ]] ||
    { echo "error: run 'npm install' in $root/bench/llamacpp first (or set LLAMA_BENCH)" >&2; exit 1; }
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run_pareto() {
  # The bandwidth probe runs in every round: a shared machine's bandwidth changes from minute to
  # minute, and Pareto pairs each of its extra tg runs with a probe pass right before it.
  echo "== round $round/$rounds: pareto" >&2
  "$pareto" bench -m "$model" -p "$pp" -n "$tg" -t "$threads" -r "$reps" --bandwidth-mib "$bandwidth_mib" \
    -d "$depth" "${pareto_fa[@]}" --json | tee "$out/pareto-$round.json"
}
run_llamacpp() {
  echo "== round $round/$rounds: llama.cpp" >&2
  if [[ -n $llama_bench ]]; then
    # llama-bench's JSON (one object per test) in the shape bench.mjs and Pareto print.
    "$llama_bench" -m "$model" -p "$pp" -n "$tg" -t "$threads" -r "$reps" -d "$depth" -fa "${FA:-0}" \
      -o json 2>"$out/llama-bench-$round.log" >"$out/llama-bench-$round.raw" ||
      { cat "$out/llama-bench-$round.log" >&2; exit 1; }
    node --input-type=module - "$out/llama-bench-$round.raw" <<'JS' | tee "$out/llamacpp-$round.json"
import {readFileSync} from "node:fs";
const rows = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = rows.map((r) => ({
  test: (r.n_gen > 0 ? `tg${r.n_gen}` : `pp${r.n_prompt}`) + (r.n_depth > 0 ? ` @ d${r.n_depth}` : ""),
  tok_per_s_mean: r.avg_ts, tok_per_s_sd: r.stddev_ts}));
console.log(JSON.stringify({engine: "llama-bench", build: rows[0]?.build_commit, results}));
JS
    return
  fi
  node "$driver" "$model" --threads "$threads" --pp "$pp" --tg "$tg" --reps "$reps" \
    --depth "$depth" "${llamacpp_fa[@]}" |
    tee "$out/llamacpp-$round.json"
}
order=()
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2 == 1)); then
    order+=("round $round: Pareto first")
    run_pareto
    run_llamacpp
  else
    order+=("round $round: llama.cpp first")
    run_llamacpp
    run_pareto
  fi
done

# Means over rounds of each test's mean, the ratios, and each round's ratio.
node --input-type=module - "$out" "$rounds" "$(IFS=';'; echo "${order[*]}")" <<'JS'
import {readFileSync} from "node:fs";
const [dir, rounds, order] = process.argv.slice(2);
const load = (name) => JSON.parse(readFileSync(`${dir}/${name}`, "utf8"));
const means = {pareto: {}, llamacpp: {}};
let bandwidth = null, limit = null, overhead = null;
const paired = [];  // Pareto's per-pair tg/probe fractions, all rounds
for (let r = 1; r <= Number(rounds); r++) {
  for (const engine of ["pareto", "llamacpp"]) {
    const j = load(`${engine}-${r}.json`);
    for (const t of j.results) (means[engine][t.test] ??= []).push(t.tok_per_s_mean);
    if (engine === "pareto" && j.bandwidth_gb_per_s && j.bandwidth_gb_per_s > (bandwidth ?? 0)) {
      bandwidth = j.bandwidth_gb_per_s;  // the best probe of all rounds
      limit = j.tg_limit_tok_per_s;
    }
    if (engine === "pareto" && j.paired_tg_gb_per_s) {
      j.paired_tg_gb_per_s.forEach((tg, i) => paired.push(tg / j.paired_probe_gb_per_s[i]));
    }
    if (engine === "llamacpp" && j.driver_overhead) overhead = j.driver_overhead.us_per_token;
  }
}
const avg = (v) => v.reduce((a, b) => a + b, 0) / v.length;
console.log(`\n${rounds} round(s), engine order alternated (${order.split(";").join(", ")})`);
console.log("\n| test | Pareto t/s | llama.cpp t/s | Pareto / llama.cpp | per round |");
console.log("| ---: | ---------: | ------------: | -----------------: | --------: |");
for (const test of Object.keys(means.pareto)) {
  const p = avg(means.pareto[test]);
  const l = means.llamacpp[test] ? avg(means.llamacpp[test]) : NaN;
  const rows = means.pareto[test].map((x, i) => (x / (means.llamacpp[test]?.[i] ?? NaN)).toFixed(3));
  console.log(`| ${test} | ${p.toFixed(2)} | ${l.toFixed(2)} | ${(p / l).toFixed(3)} | ${rows.join(", ")} |`);
}
if (bandwidth) {
  console.log(`\nbandwidth (best probe of all rounds) ${bandwidth.toFixed(2)} GB/s; ` +
              `tg limit ${limit.toFixed(2)} tok/s`);
  for (const test of Object.keys(means.pareto).filter((t) => t.startsWith("tg"))) {
    const p = avg(means.pareto[test]);
    const l = means.llamacpp[test] ? avg(means.llamacpp[test]) : NaN;
    console.log(`${test}: Pareto ${(100 * p / limit).toFixed(1)}% of the limit, ` +
                `llama.cpp ${(100 * l / limit).toFixed(1)}%`);
  }
  if (paired.length > 0) {
    const m = avg(paired);
    const sd = Math.sqrt(paired.reduce((a, x) => a + (x - m) ** 2, 0) / Math.max(paired.length - 1, 1));
    console.log(`Pareto tg paired with a probe pass just before it (${paired.length} pairs): ` +
                `${(100 * m).toFixed(1)} ± ${(100 * sd).toFixed(1)}% of the probe`);
  }
}
if (overhead !== null) console.log(`node driver per-token cost (stories260K, 1 thread): ${overhead.toFixed(1)} us`);
JS
