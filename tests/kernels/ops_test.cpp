// RMSNorm, RoPE, SiLU gating, softmax and attention against double-precision references.
#include "kernels/ops.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <random>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention.h"

namespace pareto::kernels {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(Ops, RmsNormMatchesDouble) {
  const int64_t rows = 3, n = 67;
  const auto x = random_values(rows * n, 1, 2.0f);
  const auto w = random_values(n, 2);
  std::vector<float> y(x.size());
  rms_norm(x.data(), w.data(), rows, n, 1e-5f, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double{x[r * n + i]} * x[r * n + i];
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int64_t i = 0; i < n; ++i) {
      const double e = x[r * n + i] * scale * w[i];
      ASSERT_NEAR(y[r * n + i], e, 1e-6 * (1 + std::fabs(e))) << r << "," << i;
    }
  }
  // In place gives the same result.
  std::vector<float> z = x;
  rms_norm(z.data(), w.data(), rows, n, 1e-5f, z.data());
  EXPECT_EQ(z, y);
}

TEST(Ops, SiluMulAndAddMatchDouble) {
  const int64_t n = 41;
  const auto g = random_values(n, 3, 4.0f);
  const auto u = random_values(n, 4);
  for (KernelPath path :
       {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512}) {
    std::vector<float> y = g;
    silu_mul_inplace(y.data(), u.data(), 1, n, path);
    for (int64_t i = 0; i < n; ++i) {
      const double e = g[i] / (1.0 + std::exp(-double{g[i]})) * u[i];
      ASSERT_NEAR(y[i], e, 1e-6 * (1 + std::fabs(e))) << kernel_path_name(path) << " " << i;
    }
  }
  std::vector<float> s = g;
  add_inplace(s.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s[i], g[i] + u[i]);
  std::vector<float> b = random_values(2 * n, 5);
  const std::vector<float> b0 = b;
  add_bias(b.data(), u.data(), 2, n);
  for (int64_t i = 0; i < 2 * n; ++i) ASSERT_EQ(b[i], b0[i] + u[i % n]);
}

TEST(Ops, SoftmaxMatchesDouble) {
  auto x = random_values(37, 6, 5.0f);
  const auto x0 = x;
  softmax_inplace(x.data(), 37);
  double mx = -1e300, sum = 0;
  for (float v : x0) mx = std::max(mx, double{v});
  for (float v : x0) sum += std::exp(v - mx);
  for (int i = 0; i < 37; ++i) ASSERT_NEAR(x[i], std::exp(x0[i] - mx) / sum, 1e-7);
}

// Reference rotation in double: pair i turns by pos * base^(-2i/rope_dim).
std::vector<double> rope_reference(const std::vector<float>& x, const std::vector<int32_t>& pos,
                                   int n_heads, int head_dim, int rope_dim, double base,
                                   RopeMode mode) {
  std::vector<double> y(x.begin(), x.end());
  const int half = rope_dim / 2;
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int h = 0; h < n_heads; ++h) {
      double* v = y.data() + (t * n_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const double theta = pos[t] * std::pow(base, -2.0 * i / rope_dim);
        const int i0 = mode == RopeMode::kNorm ? 2 * i : i;
        const int i1 = mode == RopeMode::kNorm ? 2 * i + 1 : i + half;
        const double a = v[i0], b = v[i1];
        v[i0] = a * std::cos(theta) - b * std::sin(theta);
        v[i1] = a * std::sin(theta) + b * std::cos(theta);
      }
    }
  }
  return y;
}

TEST(Ops, RopeBothModesMatchDoubleAndLeaveTailDims) {
  const int n_heads = 3, head_dim = 10;
  const std::vector<int32_t> pos{0, 1, 7, 250, 1000};
  for (int rope_dim : {10, 6}) {
    for (RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
      auto x = random_values(static_cast<int64_t>(pos.size()) * n_heads * head_dim, 7);
      const auto expected = rope_reference(x, pos, n_heads, head_dim, rope_dim, 10000.0, mode);
      const auto x0 = x;
      rope_inplace(x.data(), pos.data(), static_cast<int64_t>(pos.size()), n_heads, head_dim,
                   rope_dim, 10000.0f, mode);
      for (size_t i = 0; i < x.size(); ++i) {
        const size_t t = i / (n_heads * head_dim);
        // Angles are built in float by repeated multiplication: error grows with the position.
        const double tol = 1e-6 + 1.6e-6 * pos[t];
        ASSERT_NEAR(x[i], expected[i], tol) << "rope_dim " << rope_dim << " i " << i;
        if (static_cast<int>(i % head_dim) >= rope_dim) {
          ASSERT_EQ(x[i], x0[i]);
        }
      }
    }
  }
}

TEST(Ops, RopePairsAdjacentOrHalves) {
  // One head of 4 dims at position 1 with base 1: every pair turns by exactly 1 radian.
  const int32_t pos = 1;
  std::vector<float> norm{1, 0, 0, 0};
  rope_inplace(norm.data(), &pos, 1, 1, 4, 4, 1.0f, RopeMode::kNorm);
  EXPECT_FLOAT_EQ(norm[0], std::cos(1.0f));
  EXPECT_FLOAT_EQ(norm[1], std::sin(1.0f));  // partner of dim 0 is dim 1
  EXPECT_EQ(norm[2], 0.0f);
  std::vector<float> neox{1, 0, 0, 0};
  rope_inplace(neox.data(), &pos, 1, 1, 4, 4, 1.0f, RopeMode::kNeox);
  EXPECT_FLOAT_EQ(neox[0], std::cos(1.0f));
  EXPECT_EQ(neox[1], 0.0f);
  EXPECT_FLOAT_EQ(neox[2], std::sin(1.0f));  // partner of dim 0 is dim 2
}

// Attention of n_tokens queries q [n_tokens, n_heads, head_dim] at q_pos over kv into out.
AttentionArgs attention_args(const std::vector<float>& q, const int32_t* q_pos, int n_tokens,
                             int n_heads, int head_dim, float scale, std::span<const KvHeadView> kv,
                             std::vector<float>& out) {
  AttentionArgs args;
  args.q = q.data();
  args.q_positions = q_pos;
  args.n_tokens = n_tokens;
  args.n_heads = n_heads;
  args.n_kv_heads = static_cast<int>(kv.size());
  args.head_dim = head_dim;
  args.scale = scale;
  args.kv = kv;
  args.out = out.data();
  return args;
}

constexpr AttentionAlgorithm kAlgorithms[] = {AttentionAlgorithm::kSoftmaxRows,
                                              AttentionAlgorithm::kOnlineSoftmax};

TEST(Attention, GqaCausalMatchesDoubleOnBothPaths) {
  const int n_heads = 6, n_kv_heads = 2, head_dim = 12, n_kv = 9;
  // Entries at positions 0..8, but stored out of order for head 1 to check masking uses positions.
  std::vector<std::vector<float>> keys, values;
  std::vector<std::vector<int32_t>> positions;
  for (int h = 0; h < n_kv_heads; ++h) {
    keys.push_back(random_values(n_kv * head_dim, 30 + h, 2.0f));
    values.push_back(random_values(n_kv * head_dim, 40 + h));
    std::vector<int32_t> p(n_kv);
    for (int j = 0; j < n_kv; ++j) p[j] = h == 0 ? j : (j * 5) % n_kv;
    positions.push_back(p);
  }
  std::vector<KvHeadView> kv;
  for (int h = 0; h < n_kv_heads; ++h) {
    kv.push_back({keys[h].data(), values[h].data(), positions[h].data(), n_kv});
  }
  const std::vector<int32_t> q_pos{0, 4, 8};
  const int n_tokens = 3;
  const auto q = random_values(n_tokens * n_heads * head_dim, 50, 2.0f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));

  std::vector<double> expected(q.size());
  for (int t = 0; t < n_tokens; ++t) {
    for (int h = 0; h < n_heads; ++h) {
      const int g = h / (n_heads / n_kv_heads);
      std::vector<double> s(n_kv, -INFINITY);
      double mx = -INFINITY;
      for (int j = 0; j < n_kv; ++j) {
        if (positions[g][j] > q_pos[t]) continue;
        double d = 0;
        for (int k = 0; k < head_dim; ++k) {
          d += double{q[(t * n_heads + h) * head_dim + k]} * keys[g][j * head_dim + k];
        }
        s[j] = d * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int j = 0; j < n_kv; ++j) sum += std::exp(s[j] - mx);
      for (int k = 0; k < head_dim; ++k) {
        double o = 0;
        for (int j = 0; j < n_kv; ++j) o += std::exp(s[j] - mx) / sum * values[g][j * head_dim + k];
        expected[(t * n_heads + h) * head_dim + k] = o;
      }
    }
  }
  for (KernelPath path :
       {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512}) {
    for (int threads : {1, 2}) {
      for (AttentionAlgorithm algo : kAlgorithms) {
        ThreadPool pool(threads);
        std::vector<float> out(q.size(), NAN);
        const AttentionArgs args =
            attention_args(q, q_pos.data(), n_tokens, n_heads, head_dim, scale, kv, out);
        attention(args, pool, path, algo);
        for (size_t i = 0; i < out.size(); ++i) {
          ASSERT_NEAR(out[i], expected[i], 2e-6)
              << kernel_path_name(path) << " " << attention_algorithm_name(algo) << " " << i;
        }
      }
    }
  }
}

// The online form reading keys and values through a KvBlockReader (blocks of 16 entries, a short
// last one) gives the bits it gives from whole arrays, on every kernel set and split, for GQA
// heads, a prompt batch and single queries, with entries stored out of position order.
struct ArrayBlocks {
  const std::vector<float>* keys;
  const std::vector<float>* values;
  int head_dim;
  std::atomic<int>* reads;  // the reader runs on every worker thread
};
void read_array_blocks(const void* context, int begin, int n, float* keys, float* values) {
  const auto* b = static_cast<const ArrayBlocks*>(context);
  const auto from = static_cast<std::ptrdiff_t>(begin) * b->head_dim;
  const auto count = static_cast<std::ptrdiff_t>(n) * b->head_dim;
  std::copy_n(b->keys->begin() + from, count, keys);
  std::copy_n(b->values->begin() + from, count, values);
  ++*b->reads;
}

TEST(Attention, OnlineFormReadsBlocksAsItReadsArrays) {
  const int n_heads = 8, n_kv_heads = 2, n_kv = 53;
  for (const int head_dim : {48, 64}) {
    std::vector<std::vector<float>> keys, values;
    std::vector<std::vector<int32_t>> positions;
    for (int h = 0; h < n_kv_heads; ++h) {
      keys.push_back(random_values(n_kv * head_dim, 60 + h, 2.0f));
      values.push_back(random_values(n_kv * head_dim, 70 + h));
      std::vector<int32_t> p(n_kv);
      for (int j = 0; j < n_kv; ++j) p[j] = h == 0 ? j : (j * 7) % n_kv;
      positions.push_back(p);
    }
    std::atomic<int> reads = 0;
    std::vector<ArrayBlocks> blocks;
    std::vector<KvHeadView> arrays, readers;
    for (int h = 0; h < n_kv_heads; ++h) blocks.push_back({&keys[h], &values[h], head_dim, &reads});
    for (int h = 0; h < n_kv_heads; ++h) {
      arrays.push_back({keys[h].data(), values[h].data(), positions[h].data(), n_kv});
      readers.push_back({nullptr,
                         nullptr,
                         positions[h].data(),
                         n_kv,
                         {&blocks[static_cast<size_t>(h)], read_array_blocks}});
    }
    for (const std::vector<int32_t>& q_pos :
         {std::vector<int32_t>{52}, std::vector<int32_t>{20}, std::vector<int32_t>{40, 41, 52}}) {
      const int n_tokens = static_cast<int>(q_pos.size());
      const auto q = random_values(n_tokens * n_heads * head_dim, 80, 2.0f);
      for (KernelPath path :
           {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512}) {
        for (int threads : {1, 2}) {
          ThreadPool pool(threads);
          std::vector<float> from_arrays(q.size(), NAN), from_blocks(q.size(), NAN);
          attention(attention_args(q, q_pos.data(), n_tokens, n_heads, head_dim, 0.25f, arrays,
                                   from_arrays),
                    pool, path, AttentionAlgorithm::kOnlineSoftmax);
          reads = 0;
          attention(attention_args(q, q_pos.data(), n_tokens, n_heads, head_dim, 0.25f, readers,
                                   from_blocks),
                    pool, path, AttentionAlgorithm::kOnlineSoftmax);
          EXPECT_GT(reads, 0);
          for (size_t i = 0; i < q.size(); ++i) {
            ASSERT_EQ(from_blocks[i], from_arrays[i])
                << kernel_path_name(path) << " head_dim " << head_dim << " threads " << threads
                << " tokens " << n_tokens << " at " << i;
          }
        }
      }
    }
  }
}

// The query at position 0 sees only the entry at position 0: its output is that value row.
TEST(Attention, FirstPositionCopiesItsValue) {
  const int head_dim = 4;
  const std::vector<float> keys{1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<float> values{0.5f, -1, 2, 3, 9, 9, 9, 9};
  const std::vector<int32_t> positions{0, 1};
  const KvHeadView kv{keys.data(), values.data(), positions.data(), 2};
  const std::vector<float> q{1, 1, 1, 1};
  const int32_t q_pos = 0;
  for (KernelPath path :
       {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512}) {
    for (AttentionAlgorithm algo : kAlgorithms) {
      ThreadPool pool(1);
      std::vector<float> out(4);
      const AttentionArgs args =
          attention_args(q, &q_pos, 1, 1, head_dim, 0.5f, std::span<const KvHeadView>(&kv, 1), out);
      attention(args, pool, path, algo);
      for (int k = 0; k < head_dim; ++k) EXPECT_EQ(out[k], values[k]);
    }
  }
}

// A long context whose scores rise along the cache (KV head 0: the online softmax finds a new
// maximum at nearly every entry and rescales), fall (head 1: the first entry stays the maximum)
// or spread over +-60 (head 2: most exps underflow); every path and algorithm against double.
TEST(Attention, LongContextRisingAndFallingScoresMatchDouble) {
  const int n_kv_heads = 3, n_heads = 6, head_dim = 64, n_kv = 1000;
  std::vector<std::vector<float>> keys, values;
  std::vector<int32_t> positions(n_kv);
  for (int j = 0; j < n_kv; ++j) positions[j] = j;
  const std::vector<float> q = random_values(n_heads * head_dim, 5);
  for (int g = 0; g < n_kv_heads; ++g) {
    std::vector<float> k = random_values(n_kv * head_dim, 60 + g, 0.05f);
    for (int j = 0; j < n_kv; ++j) {
      // Head g's queries (2g, 2g + 1) get a score term along q of the first of them.
      const float ramp = g == 0 ? 0.02f * j : g == 1 ? -0.02f * j : (j * 37 % 120) - 60.0f;
      float qq = 0.0f;
      for (int d = 0; d < head_dim; ++d) qq += q[2 * g * head_dim + d] * q[2 * g * head_dim + d];
      for (int d = 0; d < head_dim; ++d) {
        k[j * head_dim + d] += ramp * 8.0f * q[2 * g * head_dim + d] / qq;
      }
    }
    keys.push_back(k);
    values.push_back(random_values(n_kv * head_dim, 70 + g));
  }
  std::vector<KvHeadView> kv;
  for (int g = 0; g < n_kv_heads; ++g) {
    kv.push_back({keys[g].data(), values[g].data(), positions.data(), n_kv});
  }
  const float scale = 0.125f;
  const int32_t q_pos = n_kv - 1;
  std::vector<double> expected(q.size());
  for (int h = 0; h < n_heads; ++h) {
    const int g = h / 2;
    std::vector<double> s(n_kv);
    double mx = -INFINITY;
    for (int j = 0; j < n_kv; ++j) {
      double d = 0;
      for (int k = 0; k < head_dim; ++k)
        d += double{q[h * head_dim + k]} * keys[g][j * head_dim + k];
      s[j] = d * scale;
      mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (int j = 0; j < n_kv; ++j) sum += std::exp(s[j] - mx);
    for (int k = 0; k < head_dim; ++k) {
      double o = 0;
      for (int j = 0; j < n_kv; ++j) o += std::exp(s[j] - mx) / sum * values[g][j * head_dim + k];
      expected[h * head_dim + k] = o;
    }
  }
  for (KernelPath path :
       {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512}) {
    for (AttentionAlgorithm algo : kAlgorithms) {
      ThreadPool pool(2);
      std::vector<float> out(q.size(), NAN);
      const AttentionArgs args = attention_args(q, &q_pos, 1, n_heads, head_dim, scale, kv, out);
      attention(args, pool, path, algo);
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_NEAR(out[i], expected[i], 1e-5)
            << kernel_path_name(path) << " " << attention_algorithm_name(algo) << " " << i;
      }
    }
  }
}

// attention_kv_head(g) for every KV head, one head at a time on the calling thread, writes what
// attention() writes over the pool, bit for bit: every path, both algorithms, single query and a
// causal batch, F32 and F16-rounding arithmetic. Head dims 64 (the AVX-512 16-key scores) and 12.
TEST(Attention, OneKvHeadAtATimeEqualsThePooledCallBitForBit) {
  const int n_heads = 8, n_kv_heads = 2, n_kv = 70;
  for (const int head_dim : {64, 12}) {
    std::vector<std::vector<float>> keys, values;
    std::vector<int32_t> positions(n_kv);
    for (int j = 0; j < n_kv; ++j) positions[j] = j;
    std::vector<KvHeadView> kv;
    for (int g = 0; g < n_kv_heads; ++g) {
      keys.push_back(random_values(n_kv * head_dim, 70 + g));
      values.push_back(random_values(n_kv * head_dim, 80 + g));
    }
    for (int g = 0; g < n_kv_heads; ++g) {
      kv.push_back({keys[g].data(), values[g].data(), positions.data(), n_kv});
    }
    for (const int n_tokens : {1, 5}) {
      std::vector<int32_t> q_pos(n_tokens);
      for (int t = 0; t < n_tokens; ++t) q_pos[t] = n_kv - n_tokens + t;
      const auto q = random_values(n_tokens * n_heads * head_dim, 90 + n_tokens);
      for (KernelPath path : {KernelPath::kScalar, KernelPath::kPortable,
                              KernelPath::kPortableAvx512, KernelPath::kLlamacppAmx}) {
        for (AttentionAlgorithm algo : kAlgorithms) {
          for (const bool f16 : {false, true}) {
            ThreadPool pool(3);
            std::vector<float> pooled(q.size(), NAN), by_head(q.size(), NAN);
            AttentionArgs args =
                attention_args(q, q_pos.data(), n_tokens, n_heads, head_dim, 0.125f, kv, pooled);
            args.keys_f16 = args.values_f16 = f16;
            attention(args, pool, path, algo);
            args.out = by_head.data();
            for (int g = n_kv_heads - 1; g >= 0; --g) attention_kv_head(args, g, path, algo);
            for (size_t i = 0; i < q.size(); ++i) {
              ASSERT_EQ(std::bit_cast<uint32_t>(pooled[i]), std::bit_cast<uint32_t>(by_head[i]))
                  << kernel_path_name(path) << " " << attention_algorithm_name(algo) << " head_dim "
                  << head_dim << " tokens " << n_tokens << " f16 " << f16 << " at " << i;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace pareto::kernels
