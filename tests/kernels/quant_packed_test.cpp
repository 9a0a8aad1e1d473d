// The packed Q4_0 / Q8_0 kernels (quant_packed.h) against the reference lane loops
// (kernels_quant_simd.h): every output must be the same float, bit for bit, for group-aligned and
// unaligned row ranges, tail rows, token counts off the token tiles, and several blocks.
#include "kernels/quant_packed.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/quant.h"

namespace pareto::kernels {
namespace quant_packed_test {
namespace {

// Blocks of mixed magnitudes (some all zero) so the activation scales and sums vary.
std::vector<float> random_activations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale_dist(-6.0f, 6.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float scale = b % 11 == 5 ? 0.0f : std::exp2(scale_dist(rng));
    for (int64_t j = 0; j < kQuantBlock; ++j) v[b * kQuantBlock + j] = scale * dist(rng);
  }
  return v;
}

// Random quant bytes (every nibble, Q8_0 -128 included) with random finite fp16 scales.
std::vector<uint8_t> random_weights(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const int64_t block_bytes = traits(type).block_bytes;
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(type, cols) * rows));
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  for (size_t b = 0; b < bytes.size(); b += static_cast<size_t>(block_bytes)) {
    const uint16_t d = f32_to_f16(scale(rng));
    std::memcpy(bytes.data() + b, &d, 2);
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

// y[t * rows + r] from the reference lane loop of the order matmul uses for this matrix.
std::vector<float> reference(const WeightView& w, const std::vector<uint8_t>& xq, int64_t n_tokens,
                             QuantOrder order) {
  const int64_t xrow = row_bytes(TensorType::Q8_0, w.cols);
  std::vector<float> y(static_cast<size_t>(w.rows * n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < w.rows; ++r) {
      const uint8_t* x = xq.data() + t * xrow;
      float v;
      if (w.type == TensorType::Q8_0 && order == QuantOrder::kBlock) {
        v = dot_q8_0_block_ref(w.row(r), x, w.cols);
      } else if (w.type == TensorType::Q8_0) {
        v = dot_q8_0_lanes_ref(w.row(r), x, w.cols);
      } else if (w.rows % 8 == 0) {
        v = dot_q4_0_repacked_ref(w.row(r), x, w.cols);
      } else {
        v = dot_q4_0_lanes_ref(w.row(r), x, w.cols);
      }
      y[static_cast<size_t>(t * w.rows + r)] = v;
    }
  }
  return y;
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

std::vector<Case> cases() {
  std::vector<Case> out;
  for (TensorType type : {TensorType::Q4_0, TensorType::Q8_0}) {
    for (int64_t rows :
         {16, 48, 40, 8, 96}) {  // 96: 4 interleaved decode groups + 2; rows % 32 == 0
      for (int64_t cols : {32, 96, 672, 2048}) {
        for (int64_t n_tokens : {1, 3, 4, 7, 16, 17}) out.push_back({type, rows, cols, n_tokens});
      }
    }
  }
  return out;
}

TEST(QuantPacked, PackableShapes) {
  EXPECT_TRUE(packable({TensorType::Q4_0, nullptr, 16, 64}));
  EXPECT_TRUE(packable({TensorType::Q4_0, nullptr, 40, 64}));
  EXPECT_FALSE(packable({TensorType::Q4_0, nullptr, 36, 64}));  // lanes order: not packed
  EXPECT_FALSE(packable({TensorType::Q4_0, nullptr, 8, 64}));   // no full group
  EXPECT_TRUE(packable({TensorType::Q8_0, nullptr, 36, 64}));
  EXPECT_FALSE(packable({TensorType::F16, nullptr, 64, 64}));
  EXPECT_EQ(packed_rows({TensorType::Q8_0, nullptr, 40, 64}), 32);
}

TEST(QuantPacked, RowsAreBitIdenticalToLaneLoops) {
  if (!packed_kernels_supported()) GTEST_SKIP() << "CPU lacks AVX-512 VNNI";
  for (const Case& c : cases()) {
    const auto seed = static_cast<uint32_t>(c.rows * 7919 + c.cols * 31 + c.n_tokens);
    const auto wbytes = random_weights(c.type, c.rows, c.cols, seed);
    WeightView w{c.type, wbytes.data(), c.rows, c.cols};
    const PackedWeights p = pack_weights(w);
    ASSERT_EQ(p.empty(), !packable(w)) << name(c);
    if (p.empty()) continue;
    EXPECT_EQ(p.size(), packed_bytes(w));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.data()) % 64, 0u);
    w.packed = p.data();

    const int64_t xrow = row_bytes(TensorType::Q8_0, c.cols);
    std::vector<uint8_t> xq(static_cast<size_t>(xrow * c.n_tokens));
    for (int64_t t = 0; t < c.n_tokens; ++t) {
      const auto xf = random_activations(c.cols, seed + 1000 + static_cast<uint32_t>(t));
      quantize_activations_q8_0(xf.data(), reinterpret_cast<BlockQ8_0*>(xq.data() + t * xrow),
                                c.cols);
    }
    PreparedActivations xa{TensorType::Q8_0, xq.data(), xrow, c.n_tokens};
    for (QuantOrder order : {QuantOrder::kLanes, QuantOrder::kBlock}) {
      if (order == QuantOrder::kBlock && c.type != TensorType::Q8_0) continue;
      const std::string label = name(c) + (order == QuantOrder::kBlock ? " block order" : "");
      const auto want = reference(w, xq, c.n_tokens, order);
      // The whole range, then ranges that start and end inside groups.
      std::vector<float> y(want.size(), NAN);
      matmul_packed_rows(w, xa, 0, c.rows, y.data(), order);
      expect_same_bits(y, want, label + " full range");
      std::vector<float> y2(want.size(), NAN);
      const int64_t cut1 = std::min<int64_t>(5, c.rows), cut2 = std::min<int64_t>(37, c.rows);
      matmul_packed_rows(w, xa, 0, cut1, y2.data(), order);
      matmul_packed_rows(w, xa, cut1, cut2, y2.data(), order);
      matmul_packed_rows(w, xa, cut2, c.rows, y2.data(), order);
      expect_same_bits(y2, want, label + " split ranges");
    }
  }
}

// Buffers of 2 MiB or more are 2 MiB aligned (huge pages); packing into a slice of a shared
// buffer (the model loader packs every matrix into one) writes the same bytes as pack_weights.
TEST(QuantPacked, AllocateAlignsAndPackIntoMatchesPack) {
  EXPECT_TRUE(PackedWeights::allocate(0).empty());
  const PackedWeights small = PackedWeights::allocate(4096);
  ASSERT_FALSE(small.empty());
  EXPECT_EQ(small.size(), 4096u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
  const PackedWeights big = PackedWeights::allocate((size_t{2} << 20) + 64);
  ASSERT_FALSE(big.empty());
  EXPECT_EQ(big.size(), (size_t{2} << 20) + 64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % (size_t{2} << 20), 0u);

  if (!packed_kernels_supported()) GTEST_SKIP() << "CPU lacks AVX-512 VNNI";
  for (TensorType type : {TensorType::Q4_0, TensorType::Q8_0}) {
    const auto wbytes = random_weights(type, 48, 128, 5);
    const WeightView w{type, wbytes.data(), 48, 128};
    const PackedWeights own = pack_weights(w);
    ASSERT_FALSE(own.empty());
    PackedWeights shared = PackedWeights::allocate(64 + packed_bytes(w));
    ASSERT_FALSE(shared.empty());
    std::memset(shared.mutable_data(), 0xAB, shared.size());  // padding must be rewritten
    ASSERT_TRUE(pack_weights_into(w, shared.mutable_data() + 64, nullptr));
    EXPECT_EQ(std::memcmp(shared.data() + 64, own.data(), own.size()), 0);
    const WeightView f16{TensorType::F16, wbytes.data(), 48, 32};
    EXPECT_FALSE(pack_weights_into(f16, shared.mutable_data(), nullptr));
  }
}

// Every packed row unpacks to its raw bytes; get_rows gives the same floats with or without the
// packed copy.
TEST(QuantPacked, UnpackRowAndGetRowsMatchRaw) {
  if (!packed_kernels_supported()) GTEST_SKIP() << "CPU lacks AVX-512 VNNI";
  for (TensorType type : {TensorType::Q4_0, TensorType::Q8_0}) {
    for (int64_t rows : {16, 40}) {
      const int64_t cols = 96;
      const auto wbytes = random_weights(type, rows, cols, static_cast<uint32_t>(rows));
      WeightView w{type, wbytes.data(), rows, cols};
      const PackedWeights p = pack_weights(w);
      ASSERT_FALSE(p.empty());
      w.packed = p.data();
      std::vector<uint8_t> row(static_cast<size_t>(w.row_bytes()));
      for (int64_t r = 0; r < packed_rows(w); ++r) {
        unpack_row(w, r, row.data());
        ASSERT_EQ(std::memcmp(row.data(), w.row(r), row.size()), 0) << type_name(type) << " " << r;
      }
      std::vector<int32_t> ids;
      for (int32_t r = 0; r < rows; ++r) ids.push_back((r * 7) % static_cast<int32_t>(rows));
      WeightView raw = w;
      raw.packed = nullptr;
      std::vector<float> want(ids.size() * static_cast<size_t>(cols)), got(want.size());
      get_rows(raw, ids, want.data());
      get_rows(w, ids, got.data());
      expect_same_bits(got, want, std::string(type_name(type)) + " get_rows");
    }
  }
}

// matmul() with the packed pointer set gives what it gives without it, on every path.
TEST(QuantPacked, MatmulWithPackedEqualsMatmulWithout) {
  if (!packed_kernels_supported()) GTEST_SKIP() << "CPU lacks AVX-512 VNNI";
  ThreadPool pool(2);
  for (const Case& c : cases()) {
    if (c.cols == 32 && c.n_tokens == 4) continue;  // keep the test short; covered above
    const auto seed = static_cast<uint32_t>(c.rows * 131 + c.cols * 17 + c.n_tokens);
    const auto wbytes = random_weights(c.type, c.rows, c.cols, seed);
    WeightView raw{c.type, wbytes.data(), c.rows, c.cols};
    const PackedWeights p = pack_weights(raw);
    if (p.empty()) continue;
    WeightView packed = raw;
    packed.packed = p.data();
    std::vector<float> x(static_cast<size_t>(c.cols * c.n_tokens));
    for (int64_t t = 0; t < c.n_tokens; ++t) {
      const auto xt = random_activations(c.cols, seed + static_cast<uint32_t>(t));
      std::copy(xt.begin(), xt.end(), x.begin() + t * c.cols);
    }
    for (KernelPath path : {KernelPath::kPortable, KernelPath::kPortableAvx512,
                            KernelPath::kLlamacppAmx, KernelPath::kScalar}) {
      std::vector<float> want(static_cast<size_t>(c.rows * c.n_tokens), NAN);
      std::vector<float> got(want.size(), NAN);
      matmul(raw, x.data(), c.n_tokens, want.data(), pool, path);
      matmul(packed, x.data(), c.n_tokens, got.data(), pool, path);
      expect_same_bits(got, want, name(c) + " path " + std::string(kernel_path_name(path)));
    }
  }
}

}  // namespace
}  // namespace quant_packed_test
}  // namespace pareto::kernels
