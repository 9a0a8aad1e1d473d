// AttentionArgs::keys_f16 / values_f16 (llama.cpp's attention over an F16 cache) on every kernel
// path, on inputs whose results are exact, so that each rounding and each summation order is
// seen: the softmax row rounded to F16, the query rounded to F16, a batch's scores in tinyBLAS
// order, a decode score's head_dim tail summed in double. Each case also runs without the flag
// and must then give the F32 cache's result, so the test tells the two apart. (That the SIMD forms
// equal the lane loops with the flags: float_simd_test, float_avx512_test, float_neon_test.)
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "base/thread_pool.h"
#include "kernels/attention.h"

namespace pareto::kernels {
namespace {

constexpr KernelPath kPaths[] = {KernelPath::kScalar, KernelPath::kPortable,
                                 KernelPath::kPortableAvx512, KernelPath::kLlamacppAmx};
// The llama.cpp orders (kScalar sums in its own order).
constexpr KernelPath kOrderPaths[] = {KernelPath::kPortable, KernelPath::kPortableAvx512,
                                      KernelPath::kLlamacppAmx};

// One KV head of n_kv entries at positions 0.., every query at position q_pos (all visible when
// q_pos >= n_kv - 1). Returns out [n_tokens, head_dim] (one query head).
std::vector<float> attend(KernelPath path, const std::vector<float>& q, int n_tokens, int head_dim,
                          const std::vector<float>& keys, const std::vector<float>& values,
                          int n_kv, float scale, bool keys_f16, bool values_f16) {
  std::vector<int32_t> positions(static_cast<size_t>(n_kv));
  for (int j = 0; j < n_kv; ++j) positions[static_cast<size_t>(j)] = j;
  const std::vector<int32_t> q_pos(static_cast<size_t>(n_tokens), n_kv - 1);
  const KvHeadView kv{keys.data(), values.data(), positions.data(), n_kv};
  std::vector<float> out(q.size(), NAN);
  AttentionArgs args;
  args.q = q.data();
  args.q_positions = q_pos.data();
  args.n_tokens = n_tokens;
  args.n_heads = 1;
  args.n_kv_heads = 1;
  args.head_dim = head_dim;
  args.scale = scale;
  args.kv = std::span<const KvHeadView>(&kv, 1);
  args.out = out.data();
  args.keys_f16 = keys_f16;
  args.values_f16 = values_f16;
  ThreadPool pool(2);
  attention(args, pool, path);
  return out;
}

// Three entries with equal scores (zero keys): p = 1/3 each, 0.333251953125 = 1365/4096 in F16.
// Values (d + 1) * 2^j: with the F16 row every product and sum is exact in any order, so
// out[d] = (d + 1) * 7 * 1365 / 4096; with the F32 row p = 0.33333334f and out[d] is not that.
TEST(F16KvAttention, SoftmaxRowIsRoundedToF16BeforeTheValues) {
  const int n_kv = 3;
  for (const int head_dim : {8, 64}) {
    const std::vector<float> keys(static_cast<size_t>(n_kv * head_dim), 0.0f);
    std::vector<float> values(keys.size());
    for (int j = 0; j < n_kv; ++j) {
      for (int d = 0; d < head_dim; ++d)
        values[j * head_dim + d] = static_cast<float>((d + 1) << j);
    }
    for (const KernelPath path : kPaths) {
      for (const int n_tokens : {1, 2}) {
        const std::vector<float> q(static_cast<size_t>(n_tokens * head_dim), 0.5f);
        for (const bool keys_f16 : {false, true}) {
          const auto f16 =
              attend(path, q, n_tokens, head_dim, keys, values, n_kv, 1.0f, keys_f16, true);
          const auto f32 =
              attend(path, q, n_tokens, head_dim, keys, values, n_kv, 1.0f, keys_f16, false);
          for (int t = 0; t < n_tokens; ++t) {
            for (int d = 0; d < head_dim; ++d) {
              const float want = static_cast<float>((d + 1) * 7 * 1365) / 4096.0f;
              EXPECT_EQ(f16[t * head_dim + d], want)
                  << kernel_path_name(path) << " dim " << head_dim << " tokens " << n_tokens
                  << " d " << d;
              EXPECT_NE(f32[t * head_dim + d], want) << kernel_path_name(path);
              EXPECT_NEAR(f32[t * head_dim + d], (d + 1) * 7.0 / 3.0, 1e-5 * (d + 1));
            }
          }
        }
      }
    }
  }
}

// A decode step over F16 keys equals the same step over the F32 cache's arithmetic with the query
// rounded to F16 beforehand, when head_dim (64) leaves ggml_vec_dot_f16 no tail (its order is
// then ggml_vec_dot_f32's). Without the rounding the outputs differ.
TEST(F16KvAttention, DecodeQueryIsRoundedToF16) {
  const int head_dim = 64, n_kv = 37;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const auto f16_values = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = f16_to_f32(f32_to_f16(dist(rng)));
    return v;
  };
  const std::vector<float> keys = f16_values(static_cast<size_t>(n_kv * head_dim));
  const std::vector<float> values = f16_values(keys.size());
  std::vector<float> q(static_cast<size_t>(head_dim));
  for (float& x : q) x = 2.0f * dist(rng);
  std::vector<float> q_rounded = q;
  for (float& x : q_rounded) x = f16_to_f32(f32_to_f16(x));
  const float scale = 0.125f;
  for (const KernelPath path : kPaths) {
    const auto f16 = attend(path, q, 1, head_dim, keys, values, n_kv, scale, true, false);
    const auto pre = attend(path, q_rounded, 1, head_dim, keys, values, n_kv, scale, false, false);
    const auto f32 = attend(path, q, 1, head_dim, keys, values, n_kv, scale, false, false);
    int differ = 0;
    for (int d = 0; d < head_dim; ++d) {
      EXPECT_EQ(std::bit_cast<uint32_t>(f16[d]), std::bit_cast<uint32_t>(pre[d]))
          << kernel_path_name(path) << " d " << d;
      differ += f16[d] != f32[d];
    }
    EXPECT_GT(differ, 0) << kernel_path_name(path);
  }
}

// Keys whose score is 2^24 + 1 - 2^24 (products at elements 0, W, 2W of head_dim 64: W = 8 or 16
// lanes): ggml_vec_dot_{f32,f16} put them in accumulators 0, 1, 2 and sum (acc0 + acc2) + (acc1 +
// acc3) = 1; tinyBLAS adds them in one lane, 2^24 + 1 rounds to 2^24, so 0. Entry 0 has that
// score, entry 1 score 0; values 1 and 0, so out = p_0: 1/2 for score 0, e / (1 + e) for score 1.
// Over F16 keys a batch takes tinyBLAS; a decode step, and any step over F32 keys, vec_dot.
TEST(F16KvAttention, BatchScoresTakeTinyblasOrder) {
  const int head_dim = 64, n_kv = 2;
  const double e1 = std::exp(1.0) / (1.0 + std::exp(1.0));
  for (const KernelPath path : kOrderPaths) {
    const int w = path == KernelPath::kPortable ? 8 : 16;
    std::vector<float> keys(static_cast<size_t>(n_kv * head_dim), 0.0f);
    std::vector<float> q1(static_cast<size_t>(head_dim), 0.0f);
    keys[0] = 4096.0f;
    keys[w] = 1.0f;
    keys[2 * w] = -4096.0f;
    q1[0] = 4096.0f;
    q1[w] = 1.0f;
    q1[2 * w] = 4096.0f;
    std::vector<float> values(keys.size(), 0.0f);
    for (int d = 0; d < head_dim; ++d) values[d] = 1.0f;
    std::vector<float> q2 = q1;
    q2.insert(q2.end(), q1.begin(), q1.end());
    for (const bool values_f16 : {false, true}) {
      const auto batch = attend(path, q2, 2, head_dim, keys, values, n_kv, 1.0f, true, values_f16);
      const auto decode = attend(path, q1, 1, head_dim, keys, values, n_kv, 1.0f, true, values_f16);
      const auto batch_f32 =
          attend(path, q2, 2, head_dim, keys, values, n_kv, 1.0f, false, values_f16);
      for (int d = 0; d < 2 * head_dim; ++d) {
        EXPECT_EQ(batch[d], 0.5f) << kernel_path_name(path) << " " << d;
        EXPECT_NEAR(batch_f32[d], e1, 1e-3) << kernel_path_name(path) << " " << d;
      }
      for (int d = 0; d < head_dim; ++d) {
        EXPECT_NEAR(decode[d], e1, 1e-3) << kernel_path_name(path) << " " << d;
      }
    }
  }
}

// head_dim 8 is all tail for ggml_vec_dot (chunks of 4W = 32 or 64): over F16 keys the products
// 2^24, 1, -2^24 are summed in double (score 1), over F32 keys in float (2^24 + 1 rounds: 0).
TEST(F16KvAttention, DecodeTailIsSummedInDouble) {
  const int head_dim = 8, n_kv = 2;
  const double e1 = std::exp(1.0) / (1.0 + std::exp(1.0));
  std::vector<float> keys(static_cast<size_t>(n_kv * head_dim), 0.0f);
  const std::vector<float> q{4096.0f, 1.0f, 4096.0f, 0, 0, 0, 0, 0};
  keys[0] = 4096.0f;
  keys[1] = 1.0f;
  keys[2] = -4096.0f;
  std::vector<float> values(keys.size(), 0.0f);
  for (int d = 0; d < head_dim; ++d) values[d] = 1.0f;
  for (const KernelPath path : kOrderPaths) {
    const auto f16 = attend(path, q, 1, head_dim, keys, values, n_kv, 1.0f, true, false);
    const auto f32 = attend(path, q, 1, head_dim, keys, values, n_kv, 1.0f, false, false);
    for (int d = 0; d < head_dim; ++d) {
      EXPECT_NEAR(f16[d], e1, 1e-3) << kernel_path_name(path) << " " << d;
      EXPECT_EQ(f32[d], 0.5f) << kernel_path_name(path) << " " << d;
    }
  }
}

}  // namespace
}  // namespace pareto::kernels
