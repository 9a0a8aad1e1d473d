// Google Benchmark micro-benchmarks of the kernels at the shapes of Llama-3.2-1B (hidden 2048,
// FFN 8192, 32 query heads and 8 KV heads of 64 dims), one thread (ThreadPool(1) runs inline).
// Each kernel runs on the scalar reference path and on the default path (select_kernel_path(false):
// the llama.cpp order for this CPU, or what PARETO_KERNELS asks for).
//
// Matmul weights: copies totalling PARETO_BENCH_WEIGHTS_MIB (default 1024) are cycled through, so
// decode shapes read from DRAM as in a real forward pass (0: one copy, cache-hot).
// Counters (rates per second of CPU time; the pool has no worker threads):
//   weight_B/s  weight bytes a matmul reads (rows * row_bytes), the figure decode is bound by;
//   FLOP/s      2 * rows * cols * tokens for a matmul, 4 * entries * head_dim * heads for
//   attention; elem/s      elements through quantization / norms / SiLU.
// Run: build/benchmarks/pareto_kernel_benchmarks --benchmark_filter='matmul/Q4_0/.*/t1/'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "base/tensor_type.h"
#include "base/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/kernel_path.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/quant_packed.h"

namespace {

using pareto::TensorType;
using pareto::ThreadPool;
using pareto::kernels::KernelPath;

ThreadPool& pool() {
  static ThreadPool p(1);
  return p;
}

// Uniform values in [-scale, scale) from a 64-bit xorshift; deterministic per seed, and cheap
// enough to fill hundreds of MiB.
std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (float& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = scale * (static_cast<float>(s >> 40) / static_cast<float>(1 << 23) - 1.0f);
  }
  return v;
}

// Bytes of weight copies a matmul benchmark cycles through, from PARETO_BENCH_WEIGHTS_MIB
// (default 1024 MiB, several times a large L3): each iteration then reads its matrix from DRAM, as
// a forward pass over a whole model does. 0: a single copy, which stays in cache when it fits.
size_t weight_set_bytes() {
  const char* env = std::getenv("PARETO_BENCH_WEIGHTS_MIB");
  const long mib = env != nullptr ? std::strtol(env, nullptr, 10) : 1024;
  return static_cast<size_t>(std::max(mib, 0L)) << 20;
}

// Copies of a weight matrix [rows, cols] of `type`. kDistinctRows random rows are quantized with
// quantize_row and repeated down the matrix, and the matrix is repeated `copies` times: every row
// still lives at its own address, so the memory traffic is that of distinct weights, and setup
// stays fast (K-quant quantization is slow).
struct Weights {
  std::vector<uint8_t> bytes;
  size_t matrix_bytes = 0;
  int64_t copies = 0;
  // Packed copies for the AVX-512 VNNI kernels (quant_packed.h), made on first use.
  mutable std::vector<pareto::kernels::PackedWeights> packed;
  pareto::kernels::WeightView view(TensorType type, int64_t rows, int64_t cols, int64_t i,
                                   bool use_packed = false) const {
    pareto::kernels::WeightView v{
        type, bytes.data() + static_cast<size_t>(i % copies) * matrix_bytes, rows, cols};
    if (use_packed) {
      if (packed.empty()) {
        for (int64_t c = 0; c < copies; ++c) {
          packed.push_back(pareto::kernels::pack_weights(
              {type, bytes.data() + static_cast<size_t>(c) * matrix_bytes, rows, cols}));
        }
      }
      v.packed = packed[static_cast<size_t>(i % copies)].data();
    }
    return v;
  }
};

// One set alive at a time (benchmarks of one type and shape are registered next to each other),
// so memory stays near weight_set_bytes().
const Weights& weights(TensorType type, int64_t rows, int64_t cols) {
  static std::unique_ptr<Weights> current;
  static std::tuple<TensorType, int64_t, int64_t> current_key;
  const auto key = std::make_tuple(type, rows, cols);
  if (current && current_key == key) return *current;
  current.reset();
  constexpr int64_t kDistinctRows = 64;
  const int64_t rb = pareto::row_bytes(type, cols);
  auto w = std::make_unique<Weights>();
  w->matrix_bytes = static_cast<size_t>(rows * rb);
  w->copies = std::max<int64_t>(
      1, static_cast<int64_t>((weight_set_bytes() + w->matrix_bytes - 1) / w->matrix_bytes));
  w->bytes.resize(w->matrix_bytes * static_cast<size_t>(w->copies));
  const std::vector<float> src =
      random_floats(static_cast<size_t>(kDistinctRows * cols), static_cast<uint64_t>(cols), 0.05f);
  for (int64_t r = 0; r < std::min(rows, kDistinctRows); ++r) {
    pareto::kernels::quantize_row(type, src.data() + r * cols, w->bytes.data() + r * rb, cols);
  }
  for (int64_t r = kDistinctRows; r < rows; ++r) {
    std::memcpy(w->bytes.data() + r * rb, w->bytes.data() + (r % kDistinctRows) * rb,
                static_cast<size_t>(rb));
  }
  for (int64_t c = 1; c < w->copies; ++c) {
    std::memcpy(w->bytes.data() + static_cast<size_t>(c) * w->matrix_bytes, w->bytes.data(),
                w->matrix_bytes);
  }
  current = std::move(w);
  current_key = key;
  return *current;
}

void set_rate(benchmark::State& state, const char* name, double per_iteration) {
  state.counters[name] = benchmark::Counter(per_iteration * static_cast<double>(state.iterations()),
                                            benchmark::Counter::kIsRate);
}

void bm_matmul(benchmark::State& state, TensorType type, int64_t rows, int64_t cols, int64_t tokens,
               KernelPath path, bool use_packed, bool batch_invariant) {
  const Weights& w = weights(type, rows, cols);
  const std::vector<float> x = random_floats(static_cast<size_t>(tokens * cols), 7);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  // Packing every copy happens on first use: before the timed loop, not inside it.
  if (use_packed) (void)w.view(type, rows, cols, 0, true);
  int64_t i = 0;
  for (auto _ : state) {
    pareto::kernels::matmul(w.view(type, rows, cols, i++, use_packed), x.data(), tokens, y.data(),
                            pool(), path, batch_invariant);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "weight_B/s", static_cast<double>(w.matrix_bytes));
  set_rate(state, "FLOP/s", 2.0 * static_cast<double>(rows * cols * tokens));
}

// Activation quantization before a matmul, one row of n elements: quantize_activations_q8_0_fast
// (partner of Q8_0/Q4_0 weights) and quantize_row_q8_K through quantize_row (K-quants).
void bm_quantize(benchmark::State& state, TensorType type, int64_t n) {
  const std::vector<float> x = random_floats(static_cast<size_t>(n), 11);
  std::vector<uint8_t> out(static_cast<size_t>(pareto::row_bytes(type, n)));
  for (auto _ : state) {
    if (type == TensorType::Q8_0) {
      pareto::kernels::quantize_activations_q8_0_fast(
          x.data(), reinterpret_cast<pareto::kernels::BlockQ8_0*>(out.data()), n);
    } else {
      pareto::kernels::quantize_row(type, x.data(), out.data(), n);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "elem/s", static_cast<double>(n));
}

// `tokens` query tokens, the last ones of a causal sequence of `entries` cached keys/values per
// KV head (Llama-3.2-1B head layout): 1 is a decode step, more a prompt chunk at that depth.
void bm_attention(benchmark::State& state, int entries, int tokens, KernelPath path,
                  pareto::kernels::AttentionAlgorithm algorithm) {
  constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 64;
  const size_t kv_size = static_cast<size_t>(entries) * kHeadDim;
  std::vector<std::vector<float>> keys, values;
  std::vector<int32_t> positions(static_cast<size_t>(entries));
  for (int i = 0; i < entries; ++i) positions[static_cast<size_t>(i)] = i;
  std::vector<pareto::kernels::KvHeadView> kv;
  for (int h = 0; h < kKvHeads; ++h) {
    keys.push_back(random_floats(kv_size, 100 + static_cast<uint64_t>(h)));
    values.push_back(random_floats(kv_size, 200 + static_cast<uint64_t>(h)));
  }
  for (int h = 0; h < kKvHeads; ++h) {
    kv.push_back({keys[static_cast<size_t>(h)].data(), values[static_cast<size_t>(h)].data(),
                  positions.data(), entries});
  }
  const std::vector<float> q = random_floats(static_cast<size_t>(tokens) * kHeads * kHeadDim, 3);
  std::vector<float> out(q.size());
  std::vector<int32_t> q_positions(static_cast<size_t>(tokens));
  for (int t = 0; t < tokens; ++t) q_positions[static_cast<size_t>(t)] = entries - tokens + t;
  pareto::kernels::AttentionArgs args;
  args.q = q.data();
  args.q_positions = q_positions.data();
  args.n_tokens = tokens;
  args.n_heads = kHeads;
  args.n_kv_heads = kKvHeads;
  args.head_dim = kHeadDim;
  args.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  args.kv = kv;
  args.out = out.data();
  for (auto _ : state) {
    pareto::kernels::attention(args, pool(), path, algorithm);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // q.k and p.v, 2 FLOP each, over the visible entries.
  set_rate(state, "FLOP/s",
           4.0 * (static_cast<double>(entries) - (tokens - 1) / 2.0) * tokens * kHeadDim * kHeads);
  set_rate(state, "kv_B/s", 2.0 * static_cast<double>(kv_size * sizeof(float)) * kKvHeads);
}

void bm_rms_norm(benchmark::State& state, int64_t rows, int64_t n) {
  const std::vector<float> x = random_floats(static_cast<size_t>(rows * n), 5);
  const std::vector<float> weight = random_floats(static_cast<size_t>(n), 6);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    pareto::kernels::rms_norm(x.data(), weight.data(), rows, n, 1e-5f, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "elem/s", static_cast<double>(rows * n));
}

// silu_mul_inplace overwrites gate, so each iteration restores it first (a copy of rows * n
// floats, included in the time): repeated SiLU would drift toward denormals.
void bm_silu_mul(benchmark::State& state, int64_t rows, int64_t n, KernelPath path) {
  const std::vector<float> gate0 = random_floats(static_cast<size_t>(rows * n), 8, 4.0f);
  const std::vector<float> up = random_floats(static_cast<size_t>(rows * n), 9);
  std::vector<float> gate(gate0.size());
  for (auto _ : state) {
    std::memcpy(gate.data(), gate0.data(), gate.size() * sizeof(float));
    pareto::kernels::silu_mul_inplace(gate.data(), up.data(), rows, n, path);
    benchmark::DoNotOptimize(gate.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, "elem/s", static_cast<double>(rows * n));
}

std::string path_label(KernelPath path) {
  return std::string(kernel_path_name(path));
}

void register_all() {
  const KernelPath fast = pareto::kernels::select_kernel_path(false);
  std::vector<KernelPath> paths = {KernelPath::kScalar};
  if (fast != KernelPath::kScalar) paths.push_back(fast);

  // Llama-3.2-1B projections, as {rows (outputs), cols (inputs)}: attn_q / attn_output,
  // ffn_gate / ffn_up, ffn_down.
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{2048, 2048}, {8192, 2048}, {2048, 8192}};
  const TensorType types[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16,
                              TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
                              TensorType::Q6_K};
  for (const TensorType type : types) {
    for (const Shape& s : shapes) {
      for (const int64_t tokens : {1, 8, 16, 64}) {
        for (const KernelPath path : paths) {
          const std::string name = "matmul/" + std::string(pareto::type_name(type)) + "/" +
                                   std::to_string(s.rows) + "x" + std::to_string(s.cols) + "/t" +
                                   std::to_string(tokens) + "/" + path_label(path);
          benchmark::RegisterBenchmark(name.c_str(), bm_matmul, type, s.rows, s.cols, tokens, path,
                                       false, false)
              ->Unit(benchmark::kMicrosecond);
          // The packed layout the model loader makes for these types on AVX-512 VNNI CPUs.
          if (path != KernelPath::kScalar && pareto::kernels::packed_kernels_supported() &&
              pareto::kernels::packable({type, nullptr, s.rows, s.cols})) {
            benchmark::RegisterBenchmark((name + "-packed").c_str(), bm_matmul, type, s.rows,
                                         s.cols, tokens, path, true, false)
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
  // pycode7m (dim 288, FFN 768, F32): the small-model decode of issue 16, where a row's 32-element
  // tail past the last 64-element step is summed one element at a time (llama.cpp's order).
  for (const Shape& s : {Shape{288, 288}, Shape{768, 288}, Shape{288, 768}}) {
    for (const KernelPath path : paths) {
      const std::string name = "matmul/F32/" + std::to_string(s.rows) + "x" +
                               std::to_string(s.cols) + "/t1/" + path_label(path);
      benchmark::RegisterBenchmark(name.c_str(), bm_matmul, TensorType::F32, s.rows, s.cols,
                                   int64_t{1}, path, false, false)
          ->Unit(benchmark::kMicrosecond);
    }
    // Speculative verification: a few tokens, each summed as a lone token is (batch-invariant).
    for (const int64_t tokens : {2, 4, 5, 9}) {
      const std::string name = "matmul/F32/" + std::to_string(s.rows) + "x" +
                               std::to_string(s.cols) + "/t" + std::to_string(tokens) +
                               "/invariant";
      benchmark::RegisterBenchmark(name.c_str(), bm_matmul, TensorType::F32, s.rows, s.cols, tokens,
                                   fast, false, true)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (const TensorType type : {TensorType::Q8_0, TensorType::Q8_K}) {
    for (const int64_t n : {2048, 8192}) {
      const std::string name =
          "quantize_activations/" + std::string(pareto::type_name(type)) + "/" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), bm_quantize, type, n);
    }
  }
  for (const int tokens : {1, 64}) {
    for (const int entries : {512, 2048}) {
      for (const KernelPath path : paths) {
        for (const auto algorithm : {pareto::kernels::AttentionAlgorithm::kSoftmaxRows,
                                     pareto::kernels::AttentionAlgorithm::kOnlineSoftmax}) {
          const std::string name = "attention/t" + std::to_string(tokens) + "/kv" +
                                   std::to_string(entries) + "/" + path_label(path) + "/" +
                                   std::string(attention_algorithm_name(algorithm));
          benchmark::RegisterBenchmark(name.c_str(), bm_attention, entries, tokens, path, algorithm)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  for (const int64_t rows : {1, 64}) {
    const std::string name = "rms_norm/2048/rows" + std::to_string(rows);
    benchmark::RegisterBenchmark(name.c_str(), bm_rms_norm, rows, int64_t{2048});
  }
  for (const int64_t rows : {1, 64}) {
    for (const KernelPath path : paths) {
      const std::string name = "silu_mul/8192/rows" + std::to_string(rows) + "/" + path_label(path);
      benchmark::RegisterBenchmark(name.c_str(), bm_silu_mul, rows, int64_t{8192}, path);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
