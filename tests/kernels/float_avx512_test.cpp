// The native AVX-512 float kernels (kernels_float_avx512.cpp, kernels_float_avx512_attention.cpp,
// simd_avx512.h) against the lane loops of llama.cpp's AVX-512 order
// (portable_avx512_lanes_kernel_set, ggml_math.h): identical bit for bit on odd shapes (row counts
// and token counts that are not multiples of the register tiles, rows split into odd work items,
// vec_dot tails, GQA attention with masked entries).
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/float_kernel_test_util.h"

#include "kernels/ggml_math.h"
#include "kernels/kernel_set.h"
#include "kernels/quant.h"
#include "kernels/simd_avx512.h"

namespace pareto::kernels {
namespace {

using namespace test;  // float_kernel_test_util.h

TEST(FloatAvx512, SelectedWhenSupported) {
  if (!float_avx512_supported()) GTEST_SKIP() << "no AVX-512 F/BW/VL: the AVX2 form runs";
  EXPECT_EQ(portable_avx512_kernel_set().matmul_f16,
            portable_avx512_native_kernel_set().matmul_f16);
  EXPECT_NE(portable_avx512_native_kernel_set().matmul_f16,
            portable_avx512_avx2_kernel_set().matmul_f16);
  EXPECT_NE(portable_avx512_native_kernel_set().attention,
            portable_avx512_lanes_kernel_set().attention);
  EXPECT_EQ(portable_avx512_native_kernel_set().elementwise_width, 16);
}

// Rows: 1, 5, 37 (vec_dot only: not multiples of 4) and 4, 12, 40 (tinyBLAS for 2+ tokens when
// cols is a multiple of 16); cols: 16, 48, 64, 100, 200 (tails), 2048; tokens around the 6-token
// tile, the 24-token block (F32) and the 72-token block (F16 and BF16: 80 = 72 + a short block).
TEST(FloatAvx512, MatmulsEqualLaneLoopsBitForBit) {
  if (!float_avx512_supported()) GTEST_SKIP() << "no AVX-512 F/BW/VL";
  const int64_t row_counts[] = {1, 4, 5, 12, 37, 40};
  const int64_t col_counts[] = {16, 48, 64, 100, 200, 2048};
  const int64_t token_counts[] = {1, 2, 3, 7, 19, 31, 80};
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16}) {
    for (int64_t rows : row_counts) {
      for (int64_t cols : col_counts) {
        const auto w_vals = random_values(rows * cols, 100 + static_cast<uint32_t>(cols + rows));
        const auto w_bytes = encode_rows(type, w_vals);
        const WeightView w{type, w_bytes.data(), rows, cols};
        for (int64_t tokens : token_counts) {
          const auto x_vals = random_values(tokens * cols, 200 + static_cast<uint32_t>(tokens));
          const auto x_bytes = encode_rows(type, x_vals);
          PreparedActivations x;
          x.type = type;
          x.data = x_bytes.data();
          x.row_bytes = static_cast<int64_t>(x_bytes.size()) / tokens;
          x.n_tokens = tokens;
          std::vector<float> want(static_cast<size_t>(rows * tokens), NAN);
          std::vector<float> got = want;
          float_rows_fn(portable_avx512_lanes_kernel_set(), type)(w, x, 0, rows, want.data());
          // In three row ranges with odd boundaries, as work items would.
          const MatmulRowsFn fn = float_rows_fn(portable_avx512_native_kernel_set(), type);
          const int64_t a = rows / 3, b = rows / 2 + 1;
          fn(w, x, 0, a, got.data());
          fn(w, x, a, std::min(b, rows), got.data());
          fn(w, x, std::min(b, rows), rows, got.data());
          EXPECT_EQ(bits(got), bits(want))
              << type_name(type) << " " << rows << "x" << cols << " tokens " << tokens;
        }
      }
    }
  }
}

// F16 weights x unrounded F32 activations (llamacpp-amx, KernelSet::matmul_f16_f32act), every
// token count through the tinyBLAS lanes; activation rows at a 64-byte boundary and 4 bytes off
// it (the kernel copies those to an aligned buffer).
TEST(FloatAvx512, F16TimesF32ActivationsEqualLaneLoopsBitForBit) {
  if (!float_avx512_supported()) GTEST_SKIP() << "no AVX-512 F/BW/VL";
  for (int64_t rows : {1, 4, 5, 12, 37, 40}) {
    for (int64_t cols : {16, 48, 64, 2048}) {
      const auto w_vals = random_values(rows * cols, 300 + static_cast<uint32_t>(cols + rows));
      const auto w_bytes = encode_rows(TensorType::F16, w_vals);
      const WeightView w{TensorType::F16, w_bytes.data(), rows, cols};
      for (int64_t tokens : {1, 2, 3, 7, 19, 31}) {
        for (int64_t offset : {0, 1}) {
          const auto x_vals = random_values(tokens * cols, 400 + static_cast<uint32_t>(tokens));
          std::vector<float> storage(x_vals.size() + 32);
          float* base = storage.data();
          while (reinterpret_cast<uintptr_t>(base) % 64 != 0) ++base;
          std::copy(x_vals.begin(), x_vals.end(), base + offset);
          const PreparedActivations x{
              TensorType::F32, reinterpret_cast<const uint8_t*>(base + offset), cols * 4, tokens};
          std::vector<float> want(static_cast<size_t>(rows * tokens), NAN);
          std::vector<float> got = want;
          portable_avx512_lanes_kernel_set().matmul_f16_f32act(w, x, 0, rows, want.data());
          const MatmulRowsFn fn = portable_avx512_native_kernel_set().matmul_f16_f32act;
          const int64_t a = rows / 3, b = std::min(rows / 2 + 1, rows);
          fn(w, x, 0, a, got.data());
          fn(w, x, a, b, got.data());
          fn(w, x, b, rows, got.data());
          EXPECT_EQ(bits(got), bits(want))
              << rows << "x" << cols << " tokens " << tokens << " offset " << offset;
        }
      }
    }
  }
}

TEST(FloatAvx512, AttentionEqualsLaneLoopsBitForBit) {
  if (!float_avx512_supported()) GTEST_SKIP() << "no AVX-512 F/BW/VL";
  const AttentionShape shapes[] = {
      {4, 2, 64, 37, 1},
      {4, 2, 64, 37, 3},
      {8, 2, 64, 301, 7},
      {2, 1, 128, 70, 1},
      {3, 3, 16, 1, 1},
      {2, 1, 16, 129, 2},
      {2, 2, 48, 9, 19},
      {6, 2, 32, 200, 1},
      {1, 1, 24, 65, 5},
      {4, 1, 256, 67, 2},
      {2, 1, 80, 5, 1},
      {4, 4, 64, 64, 1},
      // Head sizes with a tail (hd % 64 != 0) over 16+ keys: tails 16 keys at a time.
      {6, 6, 48, 100, 1},
      {2, 2, 48, 40, 3},
      {2, 1, 80, 37, 1},
      {2, 1, 96, 50, 2},
      // One query over a GQA group of 3-9 heads (summed 4 or 2 heads at a time, per head size),
      // over a cache longer than a few blocks, the query before the last entries (masked).
      {16, 2, 64, 1000, 1},
      {16, 2, 64, 1000, 1, 37},
      {6, 2, 48, 100, 1, 5},
      {8, 4, 128, 70, 1, 1},
      {12, 2, 96, 40, 1},
      {6, 1, 32, 333, 1, 100},
      {18, 2, 64, 200, 1, 16},
      // Prompt batches (query t at position t): most entries are after the last visible one.
      {4, 2, 64, 45, 45},
      {2, 1, 128, 33, 33},
      {2, 2, 16, 21, 21},
  };
  for (const AttentionAlgorithm algo : kAttentionAlgorithms) {
    for (const AttentionShape& s : shapes) {
      for (const AttentionFlags f : kAttentionFlags) {
        // The score-row form also writes its weights (KV policies read them).
        std::vector<std::vector<float>> want_weights, got_weights;
        const bool rows = algo == AttentionAlgorithm::kSoftmaxRows;
        const std::vector<float> want = run_attention(s, portable_avx512_lanes_kernel_set(), 0,
                                                      algo, f, rows ? &want_weights : nullptr);
        // Two work items split at an odd item.
        const std::vector<float> got = run_attention(s, portable_avx512_native_kernel_set(),
                                                     int64_t{s.n_tokens} * s.n_heads / 2 + 1, algo,
                                                     f, rows ? &got_weights : nullptr);
        for (size_t g = 0; g < want_weights.size(); ++g) {
          EXPECT_EQ(bits(got_weights[g]), bits(want_weights[g]))
              << "weights of KV head " << g << ", heads " << s.n_heads << "/" << s.n_kv_heads
              << " dim " << s.head_dim << " kv " << s.n_kv << " tokens " << s.n_tokens << " back "
              << s.q_back << " keys_f16 " << f.keys_f16 << " values_f16 " << f.values_f16;
        }
        EXPECT_EQ(bits(got), bits(want))
            << attention_algorithm_name(algo) << " heads " << s.n_heads << "/" << s.n_kv_heads
            << " dim " << s.head_dim << " kv " << s.n_kv << " tokens " << s.n_tokens << " back "
            << s.q_back << " keys_f16 " << f.keys_f16 << " values_f16 " << f.values_f16;
      }
    }
  }
}

#if defined(PARETO_HAVE_AVX512_KERNELS)
// Inputs over the whole range of the exp: ordinary values, results near the ends of the float
// range (subnormal), beyond (|n| > 192), infinities.
std::vector<float> exp_inputs() {
  std::vector<float> x = random_values(4000, 7, 3.0f);
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> wide(-150.0f, 150.0f);
  for (int i = 0; i < 4000; ++i) x.push_back(wide(rng));
  for (float v : {0.0f, -0.0f, 88.7f, 88.8f, -87.4f, -103.9f, -104.0f, INFINITY, -INFINITY, 133.0f,
                  -133.0f}) {
    x.push_back(v);
  }
  x.resize(x.size() / 16 * 16);
  return x;
}

PARETO_AVX512_WARNINGS_PUSH
PARETO_AVX512_TARGET void exp_and_silu(const std::vector<float>& x, std::vector<float>& e,
                                       std::vector<float>& s) {
  for (size_t i = 0; i < x.size(); i += 16) {
    _mm512_storeu_ps(e.data() + i, avx512::exp16(_mm512_loadu_ps(x.data() + i)));
    _mm512_storeu_ps(s.data() + i, avx512::silu16(_mm512_loadu_ps(x.data() + i)));
  }
}
PARETO_AVX512_WARNINGS_POP

TEST(FloatAvx512, ExpAndSiluEqualGgmlLanes) {
  if (!float_avx512_supported()) GTEST_SKIP() << "no AVX-512 F/BW/VL";
  const auto x = exp_inputs();
  std::vector<float> e(x.size()), s(x.size()), want_e(x.size()), want_s(x.size());
  exp_and_silu(x, e, s);
  for (size_t i = 0; i < x.size(); ++i) {
    want_e[i] = ggml::v_expf16(x[i]);
    want_s[i] = ggml::v_silu16(x[i]);
  }
  EXPECT_EQ(bits(e), bits(want_e));
  EXPECT_EQ(bits(s), bits(want_s));
}

PARETO_AVX512_WARNINGS_PUSH
PARETO_AVX512_TARGET void horizontal_sums(const std::vector<float>& x, float* one_by_one,
                                          float* sixteen_at_once) {
  __m512 v[16];
  for (int m = 0; m < 16; ++m) {
    v[m] = _mm512_loadu_ps(x.data() + 16 * m);
    one_by_one[m] = avx512::hsum16(v[m]);
  }
  _mm512_storeu_ps(sixteen_at_once, avx512::hsum16_x16(v));
}
PARETO_AVX512_WARNINGS_POP

// hsum16_x16 (16 registers reduced at once, attention scores) adds the same pairs as hsum16 per
// register: values of mixed magnitudes make any other pairing round differently.
TEST(FloatAvx512, SixteenHorizontalSumsAtOnceEqualOneByOne) {
  if (!float_avx512_supported()) GTEST_SKIP() << "no AVX-512 F/BW/VL";
  for (uint32_t seed = 0; seed < 50; ++seed) {
    std::vector<float> x = random_values(256, 900 + seed, 3.0f);
    for (size_t i = 0; i < x.size(); i += 7) x[i] *= 1e6f;  // cancellation-prone sums
    float a[16], b[16];
    horizontal_sums(x, a, b);
    for (int m = 0; m < 16; ++m) {
      ASSERT_EQ(std::bit_cast<uint32_t>(a[m]), std::bit_cast<uint32_t>(b[m]))
          << "seed " << seed << " register " << m;
    }
  }
}
#endif

}  // namespace
}  // namespace pareto::kernels
