// The AVX2 float kernels (kernels_float_simd.cpp, simd_avx2.h, ops.cpp) against the lane-loop
// statements of the same llama.cpp orders (portable_*lanes_kernel_set, ggml_math.h): identical
// bit for bit, on random inputs of odd lengths, for both the AVX2 and the AVX-512 order.
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/float_kernel_test_util.h"

#include "kernels/ggml_math.h"
#include "kernels/kernel_set.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/simd_avx2.h"

namespace pareto::kernels {
namespace float_simd_test {
namespace {

using namespace test;  // float_kernel_test_util.h

struct Profile {
  const char* name;
  const KernelSet& (*simd)();
  const KernelSet& (*lanes)();
};
const Profile kProfiles[] = {
    {"avx2-order", portable_kernel_set, portable_lanes_kernel_set},
    // The AVX2 two-halves form, whichever form portable_avx512_kernel_set() picks on this CPU
    // (float_avx512_test.cpp covers the native AVX-512 one).
    {"avx512-order", portable_avx512_avx2_kernel_set, portable_avx512_lanes_kernel_set},
};

TEST(FloatSimd, SupportedOnThisMachineOrSkipped) {
  if (!float_simd_supported()) GTEST_SKIP() << "no AVX2+FMA+F16C: the lane loops run";
  EXPECT_NE(portable_kernel_set().matmul_f32, portable_lanes_kernel_set().matmul_f32);
  EXPECT_NE(portable_avx512_avx2_kernel_set().attention,
            portable_avx512_lanes_kernel_set().attention);
  // The quantized entries are shared with the lane set.
  EXPECT_EQ(portable_kernel_set().matmul_q8_0, portable_lanes_kernel_set().matmul_q8_0);
}

struct Shape {
  int64_t rows, cols, tokens;
};

// Odd row lengths (vec_dot main loop + tail), tinyBLAS shapes for one or both orders (cols a
// multiple of 8 or 16, rows a multiple of 4), token counts around the 4-token tile and the
// 16-token block.
const Shape kShapes[] = {
    {7, 45, 1},  {5, 257, 1}, {9, 200, 3},  {12, 48, 5}, {8, 64, 2},    {12, 80, 7},
    {4, 16, 18}, {16, 96, 1}, {20, 64, 33}, {13, 64, 4}, {24, 136, 17}, {3, 7, 2},
};

TEST(FloatSimd, MatmulsEqualLaneLoopsBitForBit) {
  for (const Profile& profile : kProfiles) {
    for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16}) {
      for (const Shape& s : kShapes) {
        const auto w_vals = random_values(s.rows * s.cols, 100 + static_cast<uint32_t>(s.cols));
        const auto x_vals = random_values(s.tokens * s.cols, 200 + static_cast<uint32_t>(s.rows));
        const auto w_bytes = encode_rows(type, w_vals);
        const auto x_bytes = encode_rows(type, x_vals);
        const WeightView w{type, w_bytes.data(), s.rows, s.cols};
        PreparedActivations x;
        x.type = type;
        x.data = x_bytes.data();
        x.row_bytes = static_cast<int64_t>(x_bytes.size()) / s.tokens;
        x.n_tokens = s.tokens;
        std::vector<float> want(static_cast<size_t>(s.rows * s.tokens), NAN);
        std::vector<float> got = want;
        float_rows_fn(profile.lanes(), type)(w, x, 0, s.rows, want.data());
        // In two row ranges, as two work items would.
        const int64_t split = s.rows / 2 + 1;
        float_rows_fn(profile.simd(), type)(w, x, 0, split, got.data());
        float_rows_fn(profile.simd(), type)(w, x, split, s.rows, got.data());
        EXPECT_EQ(bits(got), bits(want)) << profile.name << " " << type_name(type) << " " << s.rows
                                         << "x" << s.cols << " tokens " << s.tokens;
      }
    }
  }
}

TEST(FloatSimd, AttentionEqualsLaneLoopsBitForBit) {
  const AttentionShape shapes[] = {
      {4, 2, 64, 37, 1},
      {4, 2, 64, 37, 3},
      {2, 1, 128, 70, 1},
      {3, 3, 8, 1, 1},
      {2, 1, 16, 129, 2},
      {2, 2, 12, 9, 2},
      {6, 2, 32, 200, 1},
      {1, 1, 24, 65, 5},
      // Prompt batches (query t at position t): most entries are after the last visible one.
      {4, 2, 64, 45, 45},
      {2, 2, 8, 19, 19},
  };
  for (const AttentionAlgorithm algo : kAttentionAlgorithms) {
    for (const Profile& profile : kProfiles) {
      for (const AttentionShape& s : shapes) {
        for (const AttentionFlags f : kAttentionFlags) {
          const std::vector<float> want = run_attention(s, profile.lanes(), 0, algo, f);
          const std::vector<float> got = run_attention(s, profile.simd(), 0, algo, f);
          EXPECT_EQ(bits(got), bits(want))
              << attention_algorithm_name(algo) << " " << profile.name << " heads " << s.n_heads
              << "/" << s.n_kv_heads << " dim " << s.head_dim << " kv " << s.n_kv << " tokens "
              << s.n_tokens << " keys_f16 " << f.keys_f16 << " values_f16 " << f.values_f16;
        }
      }
    }
  }
}

// Inputs over the whole range of the exp: ordinary values, results near the ends of the float
// range (|n| in (126, 192]: subnormal and two-step scaling), beyond (|n| > 192), infinities.
std::vector<float> exp_inputs() {
  std::vector<float> x = random_values(4001, 7, 3.0f);
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> wide(-150.0f, 150.0f);
  for (int i = 0; i < 4000; ++i) x.push_back(wide(rng));
  for (float v : {0.0f, -0.0f, 88.7f, 88.8f, -87.4f, -103.9f, -104.0f, INFINITY, -INFINITY}) {
    x.push_back(v);
  }
  return x;
}

#if defined(PARETO_HAVE_AVX2_KERNELS)
template <int kKv>
PARETO_AVX2_TARGET void vexp_all(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, avx2::vexp<kKv>(_mm256_loadu_ps(x + i)));
  }
}

TEST(FloatSimd, VectorExpsEqualGgmlLanes) {
  if (!float_simd_supported()) GTEST_SKIP() << "no AVX2+FMA+F16C";
  auto x = exp_inputs();
  x.resize(x.size() / 8 * 8);
  std::vector<float> got(x.size()), want(x.size());
  vexp_all<1>(x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) want[i] = ggml::v_expf(x[i]);
  EXPECT_EQ(bits(got), bits(want)) << "AVX2 exp";
  vexp_all<2>(x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) want[i] = ggml::v_expf16(x[i]);
  EXPECT_EQ(bits(got), bits(want)) << "AVX-512 exp";
}
#endif

TEST(FloatSimd, SiluMulEqualsGgmlLanes) {
  for (KernelPath path : {KernelPath::kPortable, KernelPath::kPortableAvx512}) {
    const int width = path == KernelPath::kPortable ? 8 : 16;
    for (int64_t n : {int64_t{7}, int64_t{16}, int64_t{45}, int64_t{8011}}) {
      auto g = exp_inputs();
      g.resize(static_cast<size_t>(n));
      const auto u = random_values(n, 9);
      // The lane loop: full vectors of `width` through ggml's v_silu, the rest through libm.
      std::vector<float> want(g.size());
      const int64_t n_vec = n / width * width;
      for (int64_t i = 0; i < n; ++i) {
        const float s = i >= n_vec    ? ggml::silu(g[i])
                        : width == 16 ? ggml::v_silu16(g[i])
                                      : ggml::v_silu(g[i]);
        want[i] = s * u[i];
      }
      silu_mul_inplace(g.data(), u.data(), 1, n, path);
      EXPECT_EQ(bits(g), bits(want)) << kernel_path_name(path) << " n " << n;
    }
  }
}

}  // namespace
}  // namespace float_simd_test
}  // namespace pareto::kernels
