// matmul and get_rows for every weight type and kernel path against a double-precision reference
// that applies the same activation rounding llama.cpp applies (Q8_0 blocks, F16, BF16).
#include "kernels/matmul.h"
#include "kernels/kernel_set.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"
#include "kernels/quant_packed.h"

namespace pareto::kernels {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// The activation row as the dot product sees it, in double (`unrounded`: F32 as given, as the
// llamacpp-amx path multiplies the F16 matrices llama.cpp's AMX build takes).
std::vector<double> rounded_activations(TensorType weight_type, const float* x, int64_t n,
                                        bool unrounded) {
  std::vector<double> out(static_cast<size_t>(n));
  const TensorType at = unrounded ? TensorType::F32 : activation_type(weight_type);
  std::vector<float> tmp(static_cast<size_t>(n));
  if (at == TensorType::F32) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i];
    return out;
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(at, n)));
  if (at == TensorType::Q8_0) {
    quantize_activations_q8_0(x, reinterpret_cast<BlockQ8_0*>(bytes.data()), n);
  } else {
    quantize_row(at, x, bytes.data(), n);
  }
  dequantize_row(at, bytes.data(), tmp.data(), n);
  for (int64_t i = 0; i < n; ++i) out[i] = tmp[i];
  return out;
}

struct Case {
  TensorType type;
  int64_t rows;
  int64_t cols;
};

// Names the case in test listings (and so in ctest) instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << type_name(c.type) << " " << c.rows << "x" << c.cols;
}

class MatmulTest : public ::testing::TestWithParam<Case> {};

TEST_P(MatmulTest, MatchesDoubleReferenceOnEveryPath) {
  const Case c = GetParam();
  const auto w_f32 = random_values(c.rows * c.cols, 10);
  std::vector<uint8_t> w_bytes(static_cast<size_t>(row_bytes(c.type, c.cols) * c.rows));
  const int64_t rb = row_bytes(c.type, c.cols);
  for (int64_t r = 0; r < c.rows; ++r) {
    quantize_row(c.type, w_f32.data() + r * c.cols, w_bytes.data() + r * rb, c.cols);
  }
  const WeightView w{c.type, w_bytes.data(), c.rows, c.cols};
  std::vector<float> w_deq(static_cast<size_t>(c.rows * c.cols));
  for (int64_t r = 0; r < c.rows; ++r) {
    dequantize_row(c.type, w.row(r), w_deq.data() + r * c.cols, c.cols);
  }

  for (int64_t n_tokens : {int64_t{1}, int64_t{5}}) {
    for (KernelPath path : {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512,
                            KernelPath::kLlamacppAmx}) {
      const auto x = random_values(n_tokens * c.cols, 20 + static_cast<uint32_t>(n_tokens));
      const bool unrounded = c.type == TensorType::F16 && f16_f32_activations(path, c.rows, c.cols);
      std::vector<double> expected(static_cast<size_t>(n_tokens * c.rows));
      std::vector<double> bound(expected.size());
      for (int64_t t = 0; t < n_tokens; ++t) {
        const auto xr = rounded_activations(c.type, x.data() + t * c.cols, c.cols, unrounded);
        for (int64_t r = 0; r < c.rows; ++r) {
          double sum = 0, sum_abs = 0;
          for (int64_t k = 0; k < c.cols; ++k) {
            sum += w_deq[r * c.cols + k] * xr[k];
            sum_abs += std::fabs(w_deq[r * c.cols + k] * xr[k]);
          }
          expected[t * c.rows + r] = sum;
          // f32 accumulation of `cols` terms: at most ~cols * eps relative to the sum of |terms|.
          bound[t * c.rows + r] = 2.0 * static_cast<double>(c.cols) * 6e-8 * sum_abs + 1e-30;
        }
      }
      for (int threads : {1, 3}) {
        ThreadPool pool(threads);
        std::vector<float> y(expected.size(), std::nanf(""));
        matmul(w, x.data(), n_tokens, y.data(), pool, path);
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_NEAR(y[i], expected[i], bound[i])
              << type_name(c.type) << " " << kernel_path_name(path) << " threads=" << threads
              << " n_tokens=" << n_tokens << " index " << i;
        }
      }
    }
  }
}

// batch_invariant: each token's row of a 7-token batch is bit-identical to that token alone, on
// every path, with and without a packed copy; and without it, at least one type/path combination
// differs (the F32/F16 tinyBLAS forms), so the flag is what makes them equal.
void expect_batch_invariant(const Case& c) {
  const auto w_f32 = random_values(c.rows * c.cols, 11);
  const int64_t rb = row_bytes(c.type, c.cols);
  std::vector<uint8_t> w_bytes(static_cast<size_t>(rb * c.rows));
  for (int64_t r = 0; r < c.rows; ++r) {
    quantize_row(c.type, w_f32.data() + r * c.cols, w_bytes.data() + r * rb, c.cols);
  }
  WeightView raw{c.type, w_bytes.data(), c.rows, c.cols};
  const PackedWeights packed = pack_weights(raw);
  WeightView with_packed = raw;
  with_packed.packed = packed.empty() ? nullptr : packed.data();
  constexpr int64_t kTokens = 7;
  const auto x = random_values(kTokens * c.cols, 31);
  ThreadPool pool(3);
  for (const WeightView& w : {raw, with_packed}) {
    for (KernelPath path : {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512,
                            KernelPath::kLlamacppAmx}) {
      std::vector<float> batch(static_cast<size_t>(kTokens * c.rows));
      matmul(w, x.data(), kTokens, batch.data(), pool, path, /*batch_invariant=*/true);
      for (int64_t t = 0; t < kTokens; ++t) {
        std::vector<float> alone(static_cast<size_t>(c.rows));
        matmul(w, x.data() + t * c.cols, 1, alone.data(), pool, path);
        ASSERT_TRUE(std::equal(alone.begin(), alone.end(), batch.begin() + t * c.rows))
            << type_name(c.type) << " " << kernel_path_name(path) << " token " << t
            << (w.packed ? " packed" : " raw");
      }
    }
  }
}

TEST(Matmul, BatchInvariantRowsEqualSingleTokenRowsBitForBit) {
  for (const Case& c : {Case{TensorType::F32, 64, 96}, Case{TensorType::F32, 37, 45},
                        Case{TensorType::F16, 64, 48}, Case{TensorType::BF16, 32, 64},
                        Case{TensorType::Q8_0, 64, 96}, Case{TensorType::Q4_0, 53, 160},
                        Case{TensorType::Q4_0, 64, 128}, Case{TensorType::Q4_K, 48, 256},
                        Case{TensorType::Q5_K, 32, 256}, Case{TensorType::Q6_K, 48, 512}}) {
    SCOPED_TRACE(::testing::PrintToString(c));
    ASSERT_NO_FATAL_FAILURE(expect_batch_invariant(c));
  }
}

// A quantized (or float) matrix of `type`, rows x cols, random values from `seed`, and its packed
// copy where the type packs.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  PackedWeights packed;
  WeightView view(bool use_packed) const {
    WeightView w = raw;
    if (use_packed && !packed.empty()) w.packed = packed.data();
    return w;
  }
  WeightView raw;
};

TestMatrix test_matrix(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  TestMatrix m;
  const auto w_f32 = random_values(rows * cols, seed);
  const int64_t rb = row_bytes(type, cols);
  m.bytes.resize(static_cast<size_t>(rb * rows));
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, w_f32.data() + r * cols, m.bytes.data() + r * rb, cols);
  }
  m.raw = WeightView{type, m.bytes.data(), rows, cols};
  m.packed = pack_weights(m.raw);
  return m;
}

// Several matrices over the same activations in one call (a layer's q/k/v, gate/up) give each
// output the bits of its own matmul call: every type and path, packed or not, decode and batch,
// both modes; and a mixture that cannot share a kernel (falls back to one call each).
TEST(Matmul, SharedInputOutputsEqualSeparateCallsBitForBit) {
  const int64_t cols = 256;
  const int64_t rows[] = {64, 16, 40};
  for (const TensorType type : {TensorType::F32, TensorType::F16, TensorType::Q8_0,
                                TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
    std::vector<TestMatrix> ms;
    for (int i = 0; i < 3; ++i) ms.push_back(test_matrix(type, rows[i], cols, 50 + i));
    for (const bool use_packed : {false, true}) {
      for (const int64_t n_tokens : {1, 5}) {
        const auto x = random_values(n_tokens * cols, 60 + static_cast<uint32_t>(n_tokens));
        for (KernelPath path : {KernelPath::kScalar, KernelPath::kPortable,
                                KernelPath::kPortableAvx512, KernelPath::kLlamacppAmx}) {
          for (const bool invariant : {false, true}) {
            ThreadPool pool(3);
            std::vector<std::vector<float>> joint(3), alone(3);
            std::vector<MatmulOutput> outs;
            for (int i = 0; i < 3; ++i) {
              joint[i].assign(static_cast<size_t>(n_tokens * rows[i]), NAN);
              alone[i].assign(joint[i].size(), NAN);
              outs.push_back({ms[i].view(use_packed), joint[i].data()});
            }
            matmul(outs, x.data(), n_tokens, pool, path, invariant);
            for (int i = 0; i < 3; ++i) {
              matmul(ms[i].view(use_packed), x.data(), n_tokens, alone[i].data(), pool, path,
                     invariant);
              ASSERT_EQ(
                  0, std::memcmp(joint[i].data(), alone[i].data(), joint[i].size() * sizeof(float)))
                  << type_name(type) << " " << kernel_path_name(path) << " output " << i
                  << " tokens " << n_tokens << (use_packed ? " packed" : " raw")
                  << (invariant ? " invariant" : "");
            }
          }
        }
      }
    }
  }
  // Q8_0 next to Q4_0: no shared kernel; still each output's own bits.
  const TestMatrix a = test_matrix(TensorType::Q8_0, 32, cols, 70);
  const TestMatrix b = test_matrix(TensorType::Q4_0, 48, cols, 71);
  const auto x = random_values(3 * cols, 72);
  ThreadPool pool(2);
  std::vector<float> ya(3 * 32), yb(3 * 48), wa(ya.size()), wb(yb.size());
  const MatmulOutput outs[] = {{a.raw, ya.data()}, {b.raw, yb.data()}};
  matmul(outs, x.data(), 3, pool, KernelPath::kPortableAvx512);
  matmul(a.raw, x.data(), 3, wa.data(), pool, KernelPath::kPortableAvx512);
  matmul(b.raw, x.data(), 3, wb.data(), pool, KernelPath::kPortableAvx512);
  EXPECT_EQ(ya, wa);
  EXPECT_EQ(yb, wb);
}

TEST(Matmul, LlamaCppOrderDependsOnTheBatchForFloatMatrices) {
  const int64_t rows = 32, cols = 256;
  const auto w_f32 = random_values(rows * cols, 12);
  const WeightView w{TensorType::F32, reinterpret_cast<const uint8_t*>(w_f32.data()), rows, cols};
  const auto x = random_values(4 * cols, 13);
  ThreadPool pool(1);
  std::vector<float> batch(static_cast<size_t>(4 * rows)), alone(static_cast<size_t>(rows));
  matmul(w, x.data(), 4, batch.data(), pool, KernelPath::kPortableAvx512);
  matmul(w, x.data(), 1, alone.data(), pool, KernelPath::kPortableAvx512);
  EXPECT_FALSE(std::equal(alone.begin(), alone.end(), batch.begin()))
      << "tinyBLAS and vec_dot gave the same bits: the batch-invariance test proves nothing";
}

TEST_P(MatmulTest, GetRowsEqualsDequantizedRows) {
  const Case c = GetParam();
  const auto w_f32 = random_values(c.rows * c.cols, 11);
  const int64_t rb = row_bytes(c.type, c.cols);
  std::vector<uint8_t> w_bytes(static_cast<size_t>(rb * c.rows));
  for (int64_t r = 0; r < c.rows; ++r) {
    quantize_row(c.type, w_f32.data() + r * c.cols, w_bytes.data() + r * rb, c.cols);
  }
  const WeightView w{c.type, w_bytes.data(), c.rows, c.cols};
  const auto some = static_cast<int32_t>(std::min<int64_t>(3, c.rows - 1));
  const std::vector<int32_t> ids{some, 0, static_cast<int32_t>(c.rows - 1), some};
  std::vector<float> got(ids.size() * static_cast<size_t>(c.cols));
  get_rows(w, ids, got.data());
  std::vector<float> row(static_cast<size_t>(c.cols));
  for (size_t i = 0; i < ids.size(); ++i) {
    dequantize_row(c.type, w.row(ids[i]), row.data(), c.cols);
    for (int64_t k = 0; k < c.cols; ++k) ASSERT_EQ(got[i * c.cols + k], row[k]);
    // And the dequantized row is close to the original values.
    for (int64_t k = 0; k < c.cols; ++k) {
      ASSERT_NEAR(row[k], w_f32[ids[i] * c.cols + k], 0.6) << type_name(c.type);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, MatmulTest,
    ::testing::Values(Case{TensorType::F32, 37, 45}, Case{TensorType::F16, 37, 45},
                      Case{TensorType::BF16, 37, 45}, Case{TensorType::F32, 3, 7},
                      Case{TensorType::Q8_0, 37, 96}, Case{TensorType::Q4_0, 37, 96},
                      Case{TensorType::Q8_0, 19, 32}, Case{TensorType::Q4_0, 53, 160},
                      Case{TensorType::Q8_0, 64, 96}, Case{TensorType::F16, 64, 48}),
    [](const ::testing::TestParamInfo<Case>& param_info) {
      return std::string(type_name(param_info.param.type)) + "_" +
             std::to_string(param_info.param.rows) + "x" + std::to_string(param_info.param.cols);
    });

TEST(Matmul, ActivationTypesFollowLlamaCpp) {
  EXPECT_EQ(activation_type(TensorType::F32), TensorType::F32);
  EXPECT_EQ(activation_type(TensorType::F16), TensorType::F16);
  EXPECT_EQ(activation_type(TensorType::BF16), TensorType::BF16);
  EXPECT_EQ(activation_type(TensorType::Q8_0), TensorType::Q8_0);
  EXPECT_EQ(activation_type(TensorType::Q4_0), TensorType::Q8_0);
}

TEST(Matmul, NativePathIsTheOrderLlamaCppLoadsOnThisCpu) {
  EXPECT_EQ(select_kernel_path(true), KernelPath::kScalar);
  // The library reads no environment: only the CPU decides (tools map PARETO_KERNELS).
#if defined(__x86_64__) || defined(__i386__)
  const KernelPath native = cpu_has_amx_int8()                  ? KernelPath::kLlamacppAmx
                            : __builtin_cpu_supports("avx512f") ? KernelPath::kPortableAvx512
                                                                : KernelPath::kPortable;
#else
  const KernelPath native = KernelPath::kPortable;  // no AVX-512 build of llama.cpp here
#endif
  EXPECT_EQ(native_kernel_path(), native);
  ::setenv("PARETO_KERNELS", "scalar", 1);
  EXPECT_EQ(select_kernel_path(false), native);
  ::unsetenv("PARETO_KERNELS");
}

TEST(Matmul, UnknownKernelOrderIsAnErrorNamingTheValidOnes) {
  auto bad = kernel_path_from_name("llamacpp-avx10");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("scalar, llamacpp-avx2, llamacpp-avx512, llamacpp-amx"),
            std::string::npos);
  auto good = kernel_path_from_name("llamacpp-amx");
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(*good, KernelPath::kLlamacppAmx);
}

TEST(Matmul, KernelPathNamesRoundTrip) {
  for (KernelPath p : {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512,
                       KernelPath::kLlamacppAmx}) {
    EXPECT_EQ(parse_kernel_path(kernel_path_name(p)), p);
    EXPECT_EQ(kernel_set(p).name, kernel_path_name(p));
  }
  EXPECT_EQ(parse_kernel_path("avx3"), std::nullopt);
}

// The AMX order's kernel table is the AVX-512 one but for Q8_0, which it sums one block at a time
// (F16 and the K-quants differ too, chosen in matmul by f16_f32_activations / quant_order).
TEST(Matmul, AmxOrderDiffersFromAvx512OnlyInQ8_0) {
  const KernelSet& amx = kernel_set(KernelPath::kLlamacppAmx);
  const KernelSet& avx512 = kernel_set(KernelPath::kPortableAvx512);
  EXPECT_EQ(amx.matmul_f32, avx512.matmul_f32);
  EXPECT_EQ(amx.matmul_f16, avx512.matmul_f16);
  EXPECT_EQ(amx.matmul_bf16, avx512.matmul_bf16);
  EXPECT_EQ(amx.matmul_q4_0, avx512.matmul_q4_0);
  EXPECT_EQ(amx.attention, avx512.attention);
  EXPECT_EQ(amx.attention_online, avx512.attention_online);
  EXPECT_EQ(amx.elementwise_width, avx512.elementwise_width);
  EXPECT_NE(amx.matmul_q8_0, avx512.matmul_q8_0);
  // Block order only for the matrices llama.cpp's AMX build takes: rows % 32 == 0.
  EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, TensorType::Q8_0, 64), QuantOrder::kBlock);
  EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, TensorType::Q8_0, 172), QuantOrder::kLanes);
  EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, TensorType::Q8_0, 48), QuantOrder::kLanes);
  EXPECT_EQ(quant_order(KernelPath::kPortableAvx512, TensorType::Q8_0, 64), QuantOrder::kLanes);
  EXPECT_EQ(quant_order(KernelPath::kPortable, TensorType::Q8_0, 64), QuantOrder::kLanes);
  for (TensorType t : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, t, 64), QuantOrder::kBlock);
    EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, t, 48), QuantOrder::kLanes);
    EXPECT_EQ(quant_order(KernelPath::kPortableAvx512, t, 64), QuantOrder::kLanes);
  }
  EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, TensorType::Q4_0, 64), QuantOrder::kLanes);
  EXPECT_EQ(quant_order(KernelPath::kLlamacppAmx, TensorType::F16, 64), QuantOrder::kLanes);
}

// matmul() on the AMX path sums a K-quant matrix in llama.cpp's AMX order exactly when
// quant_order says so (rows % 32 == 0), packed or not, and in the AVX2 order otherwise; the other
// paths always in the AVX2 order.
TEST(Matmul, KquantsFollowTheirOrderOnEveryPath) {
  const int64_t cols = 512;
  for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    for (int64_t rows : {int64_t{64}, int64_t{48}}) {
      const int64_t rb = row_bytes(type, cols);
      std::vector<uint8_t> wbytes(static_cast<size_t>(rb * rows));
      const auto wf = random_values(rows * cols, 41);
      for (int64_t r = 0; r < rows; ++r) {
        quantize_row_kquant(type, wf.data() + r * cols, wbytes.data() + r * rb, cols);
      }
      WeightView w{type, wbytes.data(), rows, cols};
      const PackedWeights packed = pack_weights(w);  // empty for Q5_K or without AVX-512 VNNI
      for (int64_t n_tokens : {int64_t{1}, int64_t{5}}) {
        const auto x = random_values(n_tokens * cols, 43);
        const int64_t xrb = row_bytes(TensorType::Q8_K, cols);
        std::vector<uint8_t> xq(static_cast<size_t>(xrb * n_tokens));
        for (int64_t t = 0; t < n_tokens; ++t) {
          quantize_row_q8_K(x.data() + t * cols, reinterpret_cast<BlockQ8_K*>(xq.data() + t * xrb),
                            cols);
        }
        for (KernelPath path :
             {KernelPath::kPortable, KernelPath::kPortableAvx512, KernelPath::kLlamacppAmx}) {
          const bool block = quant_order(path, type, rows) == QuantOrder::kBlock;
          for (const uint8_t* p : {static_cast<const uint8_t*>(nullptr), packed.data()}) {
            w.packed = p;
            ThreadPool pool(2);
            std::vector<float> y(static_cast<size_t>(rows * n_tokens));
            matmul(w, x.data(), n_tokens, y.data(), pool, path);
            for (int64_t t = 0; t < n_tokens; ++t) {
              for (int64_t r = 0; r < rows; ++r) {
                const uint8_t* xt = xq.data() + t * xrb;
                const float want = block ? dot_kquant_q8k_block(type, w.row(r), xt, cols)
                                         : dot_kquant_q8k(type, w.row(r), xt, cols);
                ASSERT_EQ(y[static_cast<size_t>(t * rows + r)], want)
                    << type_name(type) << " " << rows << " rows, " << kernel_path_name(path)
                    << (p ? " packed" : "") << ", token " << t << " row " << r;
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace pareto::kernels
