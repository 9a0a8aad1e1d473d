// Model-level micro-benchmarks (Google Benchmark): one batched forward of N causal entries of one
// sequence after a context of C tokens (64 unless given), in steady state (the entries are
// truncated again after each forward). N = 1 is a decode step; N > 1 is what a speculative
// verification costs. Models come from $PARETO_SHARED (default: ../shared beside this source tree);
// see docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "model/model.h"

namespace {

using namespace pareto;

std::string shared_path(const std::string& rel) {
  const char* env = std::getenv("PARETO_SHARED");
  const std::string root = env && *env ? env : std::string(PARETO_SOURCE_DIR) + "/../shared";
  return root + "/" + rel;
}

void forward_entries(benchmark::State& state, const std::string& path) {
  const auto n = static_cast<int>(state.range(0));
  const bool invariant = state.range(1) != 0;
  const int threads = static_cast<int>(state.range(2));
  const int n_context = state.range(3) > 0 ? static_cast<int>(state.range(3)) : 64;
  auto file = formats::open_model_file(path, "");
  if (!file) {
    state.SkipWithError(file.error().message.c_str());
    return;
  }
  auto shared = std::make_shared<const formats::ModelFile>(std::move(*file));
  auto model = model::Model::load(shared);
  if (!model) {
    state.SkipWithError(model.error().message.c_str());
    return;
  }
  ThreadPool pool(threads);
  kv::KvCache cache = (*model)->make_cache(n_context + 64, kv::KvType::kF16, kv::KvType::kF16);
  model::ForwardWorkspace ws;
  std::vector<float> logits;
  model::ForwardOptions options;
  options.batch_invariant = invariant;
  std::vector<model::BatchEntry> context;
  const int32_t vocab = (*model)->config().n_vocab;
  for (int i = 0; i < n_context; ++i) {
    context.push_back({(i * 37) % (vocab - 10) + 10, i, 0, i + 1 == n_context});
  }
  kv::KvCache* caches[] = {&cache};
  if (!(*model)->forward(context, caches, logits, ws, pool, options)) {
    state.SkipWithError("context forward failed");
    return;
  }
  std::vector<model::BatchEntry> entries;
  for (int i = 0; i < n; ++i)
    entries.push_back({(i * 53) % (vocab - 10) + 10, n_context + i, 0, true});
  for (auto _ : state) {
    auto st = (*model)->forward(entries, caches, logits, ws, pool, options);
    benchmark::DoNotOptimize(logits.data());
    cache.truncate(n_context);
    if (!st) state.SkipWithError(st.error().message.c_str());
  }
  state.counters["entries_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_forward_pycode7m(benchmark::State& state) {
  forward_entries(state, shared_path("models/pycode/pycode7m.gguf"));
}
void BM_forward_pycode1m(benchmark::State& state) {
  forward_entries(state, shared_path("models/pycode/pycode1m.gguf"));
}
void BM_forward_file(benchmark::State& state) {
  const char* path = std::getenv("PARETO_BENCH_MODEL");
  if (path == nullptr || *path == '\0') {
    state.SkipWithError("set PARETO_BENCH_MODEL to a GGUF file");
    return;
  }
  forward_entries(state, path);
}

// Args: entries, batch-invariant (0/1), threads, context tokens. The draft model is also timed at
// 192 tokens of context, about where the code workload's drafts run (prompts of 100-150 tokens
// plus the answer so far).
BENCHMARK(BM_forward_pycode7m)
    ->ArgsProduct({{1, 2, 4, 9, 17}, {0, 1}, {1, 2}, {64}})
    ->ArgNames({"entries", "invariant", "threads", "context"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_file)
    ->ArgsProduct({{1, 2, 4, 9, 17}, {0, 1}, {1, 2}, {64, 192}})
    ->ArgNames({"entries", "invariant", "threads", "context"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_forward_pycode1m)
    ->ArgsProduct({{1}, {0}, {1, 2}, {64, 192}})
    ->ArgNames({"entries", "invariant", "threads", "context"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
