// The AArch64 NEON float kernels (kernels_float_neon.cpp, simd_neon.h, ops.cpp) against the
// lane-loop statements of the same llama.cpp orders (portable_*lanes_kernel_set, ggml_math.h):
// identical bit for bit, on random inputs of odd shapes, for both the AVX2 (8-lane) and the
// AVX-512 (16-lane) order. Skipped where NEON is not built (x86-64).
#include <algorithm>
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
#include "kernels/simd_neon.h"

namespace pareto::kernels {
namespace float_neon_test {
namespace {

using namespace test;  // float_kernel_test_util.h

struct Profile {
  const char* name;
  const KernelSet& (*neon)();
  const KernelSet& (*lanes)();
};
const Profile kProfiles[] = {
    {"avx2-order", portable_neon_kernel_set, portable_lanes_kernel_set},
    {"avx512-order", portable_avx512_neon_kernel_set, portable_avx512_lanes_kernel_set},
};

TEST(FloatNeon, SelectedOnAarch64) {
  if (!float_neon_supported()) GTEST_SKIP() << "NEON kernels are built for AArch64 only";
  EXPECT_EQ(portable_kernel_set().matmul_f32, portable_neon_kernel_set().matmul_f32);
  EXPECT_EQ(portable_avx512_kernel_set().attention, portable_avx512_neon_kernel_set().attention);
  EXPECT_NE(portable_neon_kernel_set().matmul_bf16, portable_lanes_kernel_set().matmul_bf16);
  EXPECT_NE(portable_avx512_neon_kernel_set().attention,
            portable_avx512_lanes_kernel_set().attention);
  // The quantized entries and the widths are those of the lane sets.
  EXPECT_EQ(portable_neon_kernel_set().matmul_q8_0, portable_lanes_kernel_set().matmul_q8_0);
  EXPECT_EQ(portable_neon_kernel_set().elementwise_width, 8);
  EXPECT_EQ(portable_avx512_neon_kernel_set().elementwise_width, 16);
}

// Rows: 1, 5, 7, 37 (vec_dot only: not multiples of 4) and 4, 12, 16 (tinyBLAS for 2+ tokens
// when cols is a multiple of 8 / 16; not multiples of the 3- or 2-row tiles); cols with vec_dot
// tails (45, 200, 257) and without (64, 128), 8 (tinyBLAS in the AVX2 order only); tokens 1..7
// around the 4- and 3-token tiles, 18 past the 16-token block.
TEST(FloatNeon, MatmulsEqualLaneLoopsBitForBit) {
  if (!float_neon_supported()) GTEST_SKIP() << "NEON kernels are built for AArch64 only";
  const int64_t row_counts[] = {1, 4, 5, 7, 12, 16, 37};
  const int64_t col_counts[] = {8, 45, 64, 128, 200, 257};
  const int64_t token_counts[] = {1, 2, 3, 4, 5, 6, 7, 18};
  for (const Profile& profile : kProfiles) {
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
            float_rows_fn(profile.lanes(), type)(w, x, 0, rows, want.data());
            // In three row ranges with odd boundaries, as work items would.
            const MatmulRowsFn fn = float_rows_fn(profile.neon(), type);
            const int64_t a = rows / 3, b = std::min(rows / 2 + 1, rows);
            fn(w, x, 0, a, got.data());
            fn(w, x, a, b, got.data());
            fn(w, x, b, rows, got.data());
            EXPECT_EQ(bits(got), bits(want)) << profile.name << " " << type_name(type) << " "
                                             << rows << "x" << cols << " tokens " << tokens;
          }
        }
      }
    }
  }
}

// GQA groups of 1..4, head dims that are multiples of 4 but not 8 (12, 20) and of neither (6:
// the lane loops run), KV lengths around the chunk sizes (32/64) and tiny; queries whose
// position precedes every entry (no visible entry: all probabilities 0).
TEST(FloatNeon, AttentionEqualsLaneLoopsBitForBit) {
  if (!float_neon_supported()) GTEST_SKIP() << "NEON kernels are built for AArch64 only";
  const AttentionShape shapes[] = {
      {4, 2, 64, 37, 1},
      {4, 2, 64, 37, 3},
      {8, 2, 64, 131, 7},
      {2, 1, 128, 70, 1},
      {3, 3, 8, 1, 1},
      {2, 1, 16, 129, 2},
      {2, 2, 12, 9, 2},
      {6, 2, 32, 200, 1},
      {1, 1, 24, 65, 5},
      {4, 1, 20, 67, 4},
      {2, 1, 6, 33, 3},
      {2, 1, 8, 1, 3},
      {4, 4, 64, 64, 1},
      {3, 1, 12, 31, 6},
      // Prompt batches (query t at position t): most entries are after the last visible one.
      {4, 2, 64, 45, 45},
      {2, 1, 12, 23, 23},
  };
  for (const AttentionAlgorithm algo : kAttentionAlgorithms) {
    for (const Profile& profile : kProfiles) {
      for (const AttentionShape& s : shapes) {
        for (const AttentionFlags f : kAttentionFlags) {
          const std::vector<float> want = run_attention(s, profile.lanes(), 0, algo, f);
          // In two item ranges, as two work items would.
          const std::vector<float> got =
              run_attention(s, profile.neon(), int64_t{s.n_tokens} * s.n_heads / 2, algo, f);
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

#if defined(PARETO_HAVE_NEON_KERNELS)
// Here the exps are compiled into this test, which GCC builds with -ffp-contract=fast (GCC's
// arm_neon.h writes vmulq_f32 / vaddq_f32 as plain operators, so a multiply feeding an add would
// be fused): the silu and attention tests check them as the kernels build them (contraction off).
template <int kKv>
void vexp_all(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, neon::vexp<kKv>(vld1q_f32(x + i)));
}

TEST(FloatNeon, VectorExpsEqualGgmlLanes) {
  auto x = exp_inputs();
  x.resize(x.size() / 4 * 4);
  std::vector<float> got(x.size()), want(x.size());
  vexp_all<1>(x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) want[i] = ggml::v_expf(x[i]);
  EXPECT_EQ(bits(got), bits(want)) << "AVX2 exp";
  vexp_all<2>(x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) want[i] = ggml::v_expf16(x[i]);
  EXPECT_EQ(bits(got), bits(want)) << "AVX-512 exp";
}
#endif

// silu_mul_inplace over several rows (ops.cpp runs the NEON silu on AArch64).
TEST(FloatNeon, SiluMulEqualsGgmlLanes) {
  for (KernelPath path : {KernelPath::kPortable, KernelPath::kPortableAvx512}) {
    const int width = path == KernelPath::kPortable ? 8 : 16;
    for (int64_t n : {int64_t{7}, int64_t{24}, int64_t{45}, int64_t{2003}}) {
      const int64_t n_rows = 3;
      auto g = exp_inputs();
      g.resize(static_cast<size_t>(n * n_rows));
      const auto u = random_values(n * n_rows, 9);
      // The lane loop: full vectors of `width` through ggml's v_silu, the rest through libm.
      std::vector<float> want(g.size());
      const int64_t n_vec = n / width * width;
      for (int64_t r = 0; r < n_rows; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          const float v = g[r * n + i];
          const float s = i >= n_vec    ? ggml::silu(v)
                          : width == 16 ? ggml::v_silu16(v)
                                        : ggml::v_silu(v);
          want[r * n + i] = s * u[r * n + i];
        }
      }
      silu_mul_inplace(g.data(), u.data(), n_rows, n, path);
      EXPECT_EQ(bits(g), bits(want)) << kernel_path_name(path) << " n " << n;
    }
  }
}

}  // namespace
}  // namespace float_neon_test
}  // namespace pareto::kernels
