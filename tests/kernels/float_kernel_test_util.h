// Shared by the float-kernel tests (float_simd, float_avx512, float_neon): random inputs, bit
// patterns for exact comparison, and the attention cases that every SIMD form is held to against
// the lane loops.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "base/half.h"
#include "kernels/attention.h"
#include "kernels/kernel_set.h"
#include "kernels/quant.h"

namespace pareto::kernels::test {

inline std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Bit patterns, so that -0 and +0 count as different.
inline std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = std::bit_cast<uint32_t>(v[i]);
  return b;
}

inline MatmulRowsFn float_rows_fn(const KernelSet& ks, TensorType type) {
  switch (type) {
    case TensorType::F16:
      return ks.matmul_f16;
    case TensorType::BF16:
      return ks.matmul_bf16;
    default:
      return ks.matmul_f32;
  }
}

// Rows of `type` (F32 as is, F16/BF16 rounded from random floats).
inline std::vector<uint8_t> encode_rows(TensorType type, const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * (type == TensorType::F32 ? 4 : 2));
  quantize_row(type, values.data(), out.data(), static_cast<int64_t>(values.size()));
  return out;
}

inline constexpr AttentionAlgorithm kAttentionAlgorithms[] = {AttentionAlgorithm::kSoftmaxRows,
                                                              AttentionAlgorithm::kOnlineSoftmax};

// An attention case. n_tokens == n_kv is a prompt batch (query t at position t: most entries lie
// after a query's last visible one); otherwise the queries sit 3 positions apart ending q_back
// positions before the last entry, so later entries are masked.
struct AttentionShape {
  int n_heads, n_kv_heads, head_dim, n_kv, n_tokens;
  int q_back = 0;
};

// AttentionArgs::keys_f16 / values_f16 (an F16 cache's arithmetic).
struct AttentionFlags {
  bool keys_f16 = false;
  bool values_f16 = false;
};
inline constexpr AttentionFlags kAttentionFlags[] = {
    {false, false}, {true, false}, {false, true}, {true, true}};

inline std::vector<float> rounded_to_f16(std::vector<float> v) {
  for (float& x : v) x = f16_to_f32(f32_to_f16(x));
  return v;
}

// The outputs [n_tokens, n_heads, head_dim] of `set`'s attention on fixed random inputs for `s`
// (the same for every set), computed as two work ranges [0, split) and [split, n_items).
// KV head 1 stores its entries out of position order, so masking must use the positions. With
// keys_f16 / values_f16 the keys / values are F16 values, as an F16 cache decodes them.
// `weights`: when given, AttentionArgs::weights are asked for and returned there, per KV head.
inline std::vector<float> run_attention(
    const AttentionShape& s, const KernelSet& set, int64_t split = 0,
    AttentionAlgorithm algorithm = AttentionAlgorithm::kSoftmaxRows, AttentionFlags flags = {},
    std::vector<std::vector<float>>* weights = nullptr) {
  std::vector<std::vector<float>> keys, values;
  std::vector<std::vector<int32_t>> positions;
  for (int h = 0; h < s.n_kv_heads; ++h) {
    keys.push_back(random_values(int64_t{s.n_kv} * s.head_dim, 30 + h, 2.0f));
    values.push_back(random_values(int64_t{s.n_kv} * s.head_dim, 40 + h));
    if (flags.keys_f16) keys.back() = rounded_to_f16(keys.back());
    if (flags.values_f16) values.back() = rounded_to_f16(values.back());
    std::vector<int32_t> p(static_cast<size_t>(s.n_kv));
    for (int j = 0; j < s.n_kv; ++j) p[j] = h == 1 ? (j * 7) % s.n_kv : j;
    positions.push_back(p);
  }
  std::vector<KvHeadView> kv;
  for (int h = 0; h < s.n_kv_heads; ++h) {
    kv.push_back({keys[h].data(), values[h].data(), positions[h].data(), s.n_kv});
  }
  std::vector<int32_t> q_pos(static_cast<size_t>(s.n_tokens));
  const bool prompt = s.n_tokens == s.n_kv;
  for (int t = 0; t < s.n_tokens; ++t) {
    q_pos[t] = prompt ? t : s.n_kv - 1 - s.q_back - (s.n_tokens - 1 - t) * 3;
  }
  const auto q = random_values(int64_t{s.n_tokens} * s.n_heads * s.head_dim, 50, 2.0f);
  AttentionArgs args;
  args.q = q.data();
  args.q_positions = q_pos.data();
  args.n_tokens = s.n_tokens;
  args.n_heads = s.n_heads;
  args.n_kv_heads = s.n_kv_heads;
  args.head_dim = s.head_dim;
  args.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  args.kv = kv;
  args.keys_f16 = flags.keys_f16;
  args.values_f16 = flags.values_f16;
  std::vector<float> out(q.size(), NAN);
  args.out = out.data();
  std::vector<float*> weight_rows;
  if (weights != nullptr) {
    const int group = s.n_heads / s.n_kv_heads;
    weights->assign(static_cast<size_t>(s.n_kv_heads),
                    std::vector<float>(static_cast<size_t>(s.n_tokens) * group * s.n_kv, NAN));
    for (auto& w : *weights) weight_rows.push_back(w.data());
    args.weights = weight_rows;
  }
  const int64_t n_items = int64_t{s.n_tokens} * s.n_heads;
  const AttentionItemsFn fn =
      algorithm == AttentionAlgorithm::kOnlineSoftmax ? set.attention_online : set.attention;
  if (split > 0) fn(args, 0, split);
  fn(args, split, n_items);
  return out;
}

}  // namespace pareto::kernels::test
