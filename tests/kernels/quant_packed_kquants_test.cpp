// The packed Q4_K / Q6_K kernels (quant_packed_kquants*.cpp) against dot_kquant_q8k and
// matmul_kquant_rows (in llama.cpp's AMX order: dot_kquant_q8k_block and
// matmul_kquant_block_rows): every output must be the same float, bit for bit, for whole and split
// row ranges (starting / ending mid-group), tail rows, token counts off the token tiles and several
// super-blocks; and unpack_row must restore the raw rows.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"
#include "kernels/quant_packed.h"

namespace pareto::kernels {
namespace quant_packed_kquants_test {
namespace {

// Super-blocks of mixed magnitudes (one in 7 all zero).
std::vector<float> random_activations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale_dist(-6.0f, 6.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float scale = b % 7 == 3 ? 0.0f : std::exp2(scale_dist(rng));
    for (int64_t j = 0; j < kQK_K; ++j) v[b * kQK_K + j] = scale * dist(rng);
  }
  return v;
}

// Random bytes everywhere (all nibbles, 6-bit scales and mins, int8 scales) with random finite
// fp16 d (and dmin).
std::vector<uint8_t> random_weights(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(type, cols) * rows));
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  const size_t block = type == TensorType::Q4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ6_K);
  for (size_t b = 0; b < bytes.size(); b += block) {
    const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
    if (type == TensorType::Q4_K) {
      std::memcpy(bytes.data() + b + offsetof(BlockQ4_K, d), &d, 2);
      std::memcpy(bytes.data() + b + offsetof(BlockQ4_K, dmin), &dmin, 2);
    } else {
      std::memcpy(bytes.data() + b + offsetof(BlockQ6_K, d), &d, 2);
    }
  }
  return bytes;
}

struct Case {
  TensorType type;
  int64_t rows, cols, n_tokens;
};

std::string name(const Case& c) {
  return std::string(type_name(c.type)) + " rows=" + std::to_string(c.rows) +
         " cols=" + std::to_string(c.cols) + " tokens=" + std::to_string(c.n_tokens);
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t g, e;
    std::memcpy(&g, &got[i], 4);
    std::memcpy(&e, &want[i], 4);
    ASSERT_EQ(g, e) << what << " at " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(QuantPackedKquants, Packable) {
  EXPECT_TRUE(packable({TensorType::Q4_K, nullptr, 16, 256}));
  EXPECT_TRUE(packable({TensorType::Q6_K, nullptr, 40, 512}));
  EXPECT_FALSE(packable({TensorType::Q4_K, nullptr, 8, 256}));  // no full group
  EXPECT_FALSE(packable({TensorType::Q5_K, nullptr, 16, 256}));
}

TEST(QuantPackedKquants, MatchesReferenceBitForBit) {
  if (!packed_kernels_supported()) GTEST_SKIP() << "no AVX-512 VNNI";
  uint32_t seed = 1;
  for (TensorType type : {TensorType::Q4_K, TensorType::Q6_K}) {
    for (int64_t rows : {16, 48, 40}) {
      for (int64_t cols : {256, 768, 2048}) {
        for (int64_t n_tokens : {1, 3, 8, 17}) {
          const Case c{type, rows, cols, n_tokens};
          const std::vector<uint8_t> wbytes = random_weights(type, rows, cols, seed++);
          WeightView w{type, wbytes.data(), rows, cols};
          const PackedWeights p = pack_weights(w);
          ASSERT_FALSE(p.empty()) << name(c);
          ASSERT_EQ(p.size(), packed_bytes(w)) << name(c);
          const std::vector<float> xf = random_activations(cols * n_tokens, seed++);
          const int64_t xrow = row_bytes(TensorType::Q8_K, cols);
          std::vector<uint8_t> xq(static_cast<size_t>(xrow * n_tokens));
          for (int64_t t = 0; t < n_tokens; ++t) {
            quantize_row_q8_K(xf.data() + t * cols,
                              reinterpret_cast<BlockQ8_K*>(xq.data() + t * xrow), cols);
          }
          const PreparedActivations xa{TensorType::Q8_K, xq.data(), xrow, n_tokens};
          w.packed = p.data();
          for (QuantOrder order : {QuantOrder::kLanes, QuantOrder::kBlock}) {
            const bool block = order == QuantOrder::kBlock;
            const std::string label = name(c) + (block ? " block order" : "");
            // References: the dot product and the (raw) tiled rows kernel.
            std::vector<float> want(static_cast<size_t>(rows * n_tokens));
            for (int64_t t = 0; t < n_tokens; ++t) {
              for (int64_t r = 0; r < rows; ++r) {
                want[static_cast<size_t>(t * rows + r)] =
                    block ? dot_kquant_q8k_block(type, w.row(r), xa.row(t), cols)
                          : dot_kquant_q8k(type, w.row(r), xa.row(t), cols);
              }
            }
            std::vector<float> rows_ref(want.size());
            (block ? matmul_kquant_block_rows : matmul_kquant_rows)(w, xa, 0, rows,
                                                                    rows_ref.data());
            expect_same_bits(rows_ref, want, "raw rows " + label);

            std::vector<float> y(want.size(), -1.0f);
            matmul_packed_rows(w, xa, 0, rows, y.data(), order);
            expect_same_bits(y, want, "packed " + label);
            // Split ranges starting and ending mid-group.
            std::vector<float> y2(want.size(), -1.0f);
            const int64_t cut1 = 5, cut2 = rows - 7;
            matmul_packed_rows(w, xa, 0, cut1, y2.data(), order);
            matmul_packed_rows(w, xa, cut1, cut2, y2.data(), order);
            matmul_packed_rows(w, xa, cut2, rows, y2.data(), order);
            expect_same_bits(y2, want, "packed split " + label);
          }
        }
      }
    }
  }
}

TEST(QuantPackedKquants, UnpackRowRoundTrip) {
  if (!packed_kernels_supported()) GTEST_SKIP() << "no AVX-512 VNNI";
  for (TensorType type : {TensorType::Q4_K, TensorType::Q6_K}) {
    const int64_t rows = 40, cols = 768;
    const std::vector<uint8_t> wbytes = random_weights(type, rows, cols, 99);
    WeightView w{type, wbytes.data(), rows, cols};
    const PackedWeights p = pack_weights(w);
    ASSERT_FALSE(p.empty());
    w.packed = p.data();
    std::vector<uint8_t> row(static_cast<size_t>(w.row_bytes()));
    for (int64_t r = 0; r < packed_rows(w); ++r) {
      std::fill(row.begin(), row.end(), uint8_t{0xAB});
      unpack_row(w, r, row.data());
      ASSERT_EQ(std::memcmp(row.data(), w.row(r), row.size()), 0)
          << type_name(type) << " row " << r;
    }
  }
}

}  // namespace
}  // namespace quant_packed_kquants_test
}  // namespace pareto::kernels
