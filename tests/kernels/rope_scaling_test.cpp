// RoPE scaling (linear, YaRN, per-pair frequency factors) against a double-precision transcription
// of llama.cpp's formulas (ggml-cpu ops.cpp: rope_yarn_ramp, rope_yarn, ggml_rope_cache_init;
// ggml.c: ggml_rope_yarn_corr_dims), and plain RoPE bit for bit as it was computed before scaling
// existed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"

namespace pareto::kernels {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// llama.cpp's RoPE in double: corr dims, ramp, interpolation/extrapolation mix, magnitude.
std::vector<double> reference(const std::vector<float>& x, const std::vector<int32_t>& pos,
                              int n_heads, int head_dim, const RopeParams& p) {
  const double pi = std::numbers::pi;
  const int half = p.rope_dim / 2;
  double low = 0, high = 0;
  if (p.ext_factor != 0) {
    const auto corr = [&](double beta) {
      return p.rope_dim * std::log(p.n_ctx_orig / (beta * 2 * pi)) / (2 * std::log(p.base));
    };
    low = std::max(0.0, std::floor(corr(p.beta_fast)));
    high = std::min(static_cast<double>(p.rope_dim - 1), std::ceil(corr(p.beta_slow)));
  }
  std::vector<double> y(x.begin(), x.end());
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int h = 0; h < n_heads; ++h) {
      double* v = y.data() + (t * n_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const double ff = p.freq_factors ? p.freq_factors[i] : 1.0;
        const double extrap =
            pos[t] * std::pow(static_cast<double>(p.base), -2.0 * i / p.rope_dim) / ff;
        const double interp = p.freq_scale * extrap;
        double theta = interp;
        double mscale = p.attn_factor;
        if (p.ext_factor != 0) {
          const double r = (i - low) / std::max(0.001, high - low);
          const double mix = (1 - std::min(1.0, std::max(0.0, r))) * p.ext_factor;
          theta = interp * (1 - mix) + extrap * mix;
          mscale *= 1 + 0.1 * std::log(1.0 / p.freq_scale);
        }
        const int i0 = p.mode == RopeMode::kNorm ? 2 * i : i;
        const int i1 = p.mode == RopeMode::kNorm ? 2 * i + 1 : i + half;
        const double a = v[i0], b = v[i1];
        const double c = std::cos(theta) * mscale, s = std::sin(theta) * mscale;
        v[i0] = a * c - b * s;
        v[i1] = a * s + b * c;
      }
    }
  }
  return y;
}

// Runs the kernel and the reference on random heads and compares every value; dims past
// rope_dim must be left untouched.
void expect_matches_reference(const RopeParams& p, int head_dim, const char* what) {
  const int n_heads = 3;
  const std::vector<int32_t> pos{0, 1, 7, 100, 250, 1000};
  auto x = random_values(pos.size() * n_heads * head_dim, 11);
  const auto x0 = x;
  const auto expected = reference(x, pos, n_heads, head_dim, p);
  rope_inplace(x.data(), pos.data(), static_cast<int64_t>(pos.size()), n_heads, head_dim, p);
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t t = i / (n_heads * head_dim);
    // Angles are built in float by repeated multiplication: error grows with the position.
    const double tol = 2e-6 + 1.6e-6 * pos[t];
    ASSERT_NEAR(x[i], expected[i], tol) << what << ": element " << i << " (position " << pos[t]
                                        << ", mode " << static_cast<int>(p.mode) << ")";
    if (static_cast<int>(i % head_dim) >= p.rope_dim) {
      ASSERT_EQ(x[i], x0[i]);
    }
  }
}

TEST(RopeScaling, CorrDimsAreLlamaCppsRange) {
  float d[2];
  rope_yarn_corr_dims(64, 4096, 10000.0f, 32.0f, 1.0f, d);  // 10.47 -> 10, 22.51 -> 23
  EXPECT_EQ(d[0], 10.0f);
  EXPECT_EQ(d[1], 23.0f);
  rope_yarn_corr_dims(64, 256, 10000.0f, 32.0f, 1.0f, d);  // 0.84 -> 0, 12.88 -> 13
  EXPECT_EQ(d[0], 0.0f);
  EXPECT_EQ(d[1], 13.0f);
  rope_yarn_corr_dims(48, 128, 10000.0f, 32.0f, 1.0f, d);  // -2.4 -> 0 (clamped), 7.85 -> 8
  EXPECT_EQ(d[0], 0.0f);
  EXPECT_EQ(d[1], 8.0f);
  rope_yarn_corr_dims(8, 1 << 30, 10000.0f, 32.0f, 1.0f, d);  // end past n_dims - 1: clamped
  EXPECT_EQ(d[1], 7.0f);
}

TEST(RopeScaling, LinearMatchesReference) {
  for (const RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    for (const int rope_dim : {16, 10}) {
      RopeParams p;
      p.rope_dim = rope_dim;
      p.mode = mode;
      p.freq_scale = 0.25f;
      expect_matches_reference(p, 16, "linear x4");
      p.attn_factor = 0.8f;  // rope.scaling.attn_factor scales cos and sin with any type
      expect_matches_reference(p, 16, "linear x4, attn_factor 0.8");
    }
  }
}

TEST(RopeScaling, YarnRampAndMagnitudeMatchReference) {
  for (const RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    for (const int n_ctx_orig : {256, 4096}) {  // ramps over pairs [0, 13] and [10, 23]
      RopeParams p;
      p.rope_dim = 64;
      p.mode = mode;
      p.freq_scale = 0.25f;
      p.ext_factor = 1.0f;
      p.attn_factor = 0.9f;
      p.n_ctx_orig = n_ctx_orig;
      expect_matches_reference(p, 64, "yarn x4");
      p.ext_factor = 0.5f;  // a partial ramp weight
      expect_matches_reference(p, 64, "yarn x4, ext_factor 0.5");
    }
  }
}

TEST(RopeScaling, FreqFactorsDivideTheAngle) {
  std::vector<float> ff(32);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(1.0f, 8.0f);
  for (auto& f : ff) f = dist(rng);
  for (const RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    RopeParams p;
    p.rope_dim = 64;
    p.mode = mode;
    p.freq_factors = ff.data();
    expect_matches_reference(p, 64, "freq factors");
    p.freq_scale = 0.5f;
    p.ext_factor = 1.0f;
    p.n_ctx_orig = 4096;
    expect_matches_reference(p, 64, "freq factors with yarn x2");
  }
}

TEST(RopeScaling, YarnDiffersFromLinearOnlyWhereTheRampIsOpen) {
  // Pairs below the ramp (i <= low) are extrapolated (unscaled angle), pairs past it (i >= high)
  // interpolated (linear): check both ends against plain and linear RoPE on one position.
  RopeParams yarn;
  yarn.rope_dim = 64;
  yarn.freq_scale = 0.25f;
  yarn.ext_factor = 1.0f;
  yarn.n_ctx_orig = 4096;  // ramp [10, 23]
  RopeParams plain = yarn;
  plain.freq_scale = 1.0f;
  plain.ext_factor = 0.0f;
  RopeParams linear = plain;
  linear.freq_scale = 0.25f;
  float corr[2];
  rope_yarn_corr_dims(64, 4096, 10000.0f, 32.0f, 1.0f, corr);
  std::vector<float> cy(64), cp(64), cl(64);
  rope_cos_sin(yarn, 300, corr, cy.data());
  rope_cos_sin(plain, 300, corr, cp.data());
  rope_cos_sin(linear, 300, corr, cl.data());
  const float mscale = 1.0f + 0.1f * std::log(4.0f);
  for (int i = 0; i < 32; ++i) {
    const float* want = i <= 10 ? cp.data() : i >= 23 ? cl.data() : nullptr;
    if (want == nullptr) continue;
    EXPECT_NEAR(cy[2 * i], want[2 * i] * mscale, 1e-6) << "pair " << i;
    EXPECT_NEAR(cy[2 * i + 1], want[2 * i + 1] * mscale, 1e-6) << "pair " << i;
  }
}

// rope_inplace as it was before scaling existed (commit af9a04d), rotation included: the new
// kernel must give the same bits when nothing scales.
void rope_before(float* x, const int32_t* positions, int64_t n_tokens, int n_heads, int head_dim,
                 int rope_dim, float base, RopeMode mode) {
  const int n_pairs = rope_dim / 2;
  const float theta_scale = std::pow(base, -2.0f / static_cast<float>(rope_dim));
  std::vector<float> cos_sin(static_cast<size_t>(rope_dim));
  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = static_cast<float>(positions[t]);
    for (int i = 0; i < n_pairs; ++i) {
      cos_sin[2 * i] = std::cos(theta);
      cos_sin[2 * i + 1] = std::sin(theta);
      theta *= theta_scale;
    }
    for (int h = 0; h < n_heads; ++h) {
      float* vh = x + (t * n_heads + h) * head_dim;
      for (int i = 0; i < n_pairs; ++i) {
        const int i0 = mode == RopeMode::kNorm ? 2 * i : i;
        const int i1 = mode == RopeMode::kNorm ? 2 * i + 1 : i + n_pairs;
        const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
        const float x0 = vh[i0], x1 = vh[i1];
        const float x1s = x1 * s, x1c = x1 * c;
        vh[i0] = std::fma(x0, c, -x1s);
        vh[i1] = std::fma(x0, s, x1c);
      }
    }
  }
}

TEST(RopeScaling, WithoutScalingBitIdenticalToBefore) {
  const int n_heads = 4, head_dim = 48;
  const std::vector<int32_t> pos{0, 1, 2, 7, 63, 250, 1000, 4095, 100000};
  const std::vector<float> ones(24, 1.0f);
  for (const RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    for (const int rope_dim : {48, 32}) {
      for (const float base : {10000.0f, 500000.0f, 1e6f}) {
        const auto x = random_values(pos.size() * n_heads * head_dim, 5);
        auto before = x;
        rope_before(before.data(), pos.data(), static_cast<int64_t>(pos.size()), n_heads, head_dim,
                    rope_dim, base, mode);
        RopeParams p;
        p.rope_dim = rope_dim;
        p.mode = mode;
        p.base = base;
        auto now = x;
        rope_inplace(now.data(), pos.data(), static_cast<int64_t>(pos.size()), n_heads, head_dim,
                     p);
        ASSERT_EQ(0, std::memcmp(now.data(), before.data(), now.size() * sizeof(float)))
            << "default RopeParams, rope_dim " << rope_dim << " base " << base;
        // Neutral values stated explicitly (type none, factor 1, freq factors of 1) too.
        p.freq_scale = 1.0f;
        p.attn_factor = 1.0f;
        p.freq_factors = ones.data();
        auto neutral = x;
        rope_inplace(neutral.data(), pos.data(), static_cast<int64_t>(pos.size()), n_heads,
                     head_dim, p);
        ASSERT_EQ(0, std::memcmp(neutral.data(), before.data(), now.size() * sizeof(float)))
            << "neutral RopeParams, rope_dim " << rope_dim << " base " << base;
        auto plain = x;  // the plain overload
        rope_inplace(plain.data(), pos.data(), static_cast<int64_t>(pos.size()), n_heads, head_dim,
                     rope_dim, base, mode);
        ASSERT_EQ(0, std::memcmp(plain.data(), before.data(), now.size() * sizeof(float)));
      }
    }
  }
}

}  // namespace
}  // namespace pareto::kernels
