#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "base/check.h"
#include "kernels/ggml_math.h"
#include "kernels/kernel_set.h"
#include "kernels/simd_avx2.h"
#include "kernels/simd_avx512.h"
#include "kernels/simd_neon.h"

namespace pareto::kernels {

void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t n, float eps, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(xr[i] * xr[i]);
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] * scale) * weight[i];
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r) add_inplace(x + r * n, bias, n);
}

namespace {

#if defined(PARETO_HAVE_AVX2_KERNELS)
// The full vectors of one row: ggml_v_silu (x / (1 + exp(0 - x))) times up, 8 lanes at a time;
// kKv picks the AVX2 (1) or AVX-512 (2) exp, lane for lane as ggml::v_silu / v_silu16.
template <int kKv>
PARETO_AVX2_TARGET void silu_mul_vectors(float* g, const float* u, int64_t n_vec) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n_vec; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 e = avx2::vexp<kKv>(_mm256_sub_ps(_mm256_setzero_ps(), x));
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, e));
    _mm256_storeu_ps(g + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
  }
}
#endif

#if defined(PARETO_HAVE_AVX512_KERNELS)
// The same for the AVX-512 order in native zmm (ggml::v_silu16 lane for lane).
PARETO_AVX512_WARNINGS_PUSH
PARETO_AVX512_TARGET void silu_mul_vectors16(float* g, const float* u, int64_t n_vec) {
  for (int64_t i = 0; i < n_vec; i += 16) {
    const __m512 silu = avx512::silu16(_mm512_loadu_ps(g + i));
    _mm512_storeu_ps(g + i, _mm512_mul_ps(silu, _mm512_loadu_ps(u + i)));
  }
}
PARETO_AVX512_WARNINGS_POP
#endif

#if defined(PARETO_HAVE_NEON_KERNELS)
// The same in NEON, 4 lanes at a time (n_vec is a multiple of the width, 8 or 16); kKv picks the
// AVX2 (1) or AVX-512 (2) exp, lane for lane as ggml::v_silu / v_silu16.
template <int kKv>
void silu_mul_vectors_neon(float* g, const float* u, int64_t n_vec) {
  for (int64_t i = 0; i < n_vec; i += 4) {
    vst1q_f32(g + i, vmulq_f32(neon::silu<kKv>(vld1q_f32(g + i)), vld1q_f32(u + i)));
  }
}
#endif

void silu_mul_vectors_lanes(float* g, const float* u, int64_t n_vec, int width) {
  if (width == 16) {
    for (int64_t i = 0; i < n_vec; ++i) g[i] = ggml::v_silu16(g[i]) * u[i];
  } else {
    for (int64_t i = 0; i < n_vec; ++i) g[i] = ggml::v_silu(g[i]) * u[i];
  }
}

}  // namespace

void silu_mul_inplace(float* gate, const float* up, int64_t n_rows, int64_t n, KernelPath path) {
  // ggml_vec_swiglu_f32, per row: full vectors through v_silu, the tail through libm's expf.
  const int width = kernel_set(path).elementwise_width;
  const int64_t n_vec = n / width * width;
  [[maybe_unused]] const bool simd = path != KernelPath::kScalar && float_simd_supported();
  [[maybe_unused]] const bool avx512 = float_avx512_supported();
  [[maybe_unused]] const bool neon = path != KernelPath::kScalar && float_neon_supported();
  for (int64_t r = 0; r < n_rows; ++r) {
    float* g = gate + r * n;
    const float* u = up + r * n;
#if defined(PARETO_HAVE_AVX2_KERNELS)
    if (simd && width == 16 && avx512) {
      silu_mul_vectors16(g, u, n_vec);
    } else if (simd && width == 16) {
      silu_mul_vectors<2>(g, u, n_vec);
    } else if (simd && width == 8) {
      silu_mul_vectors<1>(g, u, n_vec);
    } else {
      silu_mul_vectors_lanes(g, u, n_vec, width);
    }
#elif defined(PARETO_HAVE_NEON_KERNELS)
    if (neon && width == 16) {
      silu_mul_vectors_neon<2>(g, u, n_vec);
    } else if (neon && width == 8) {
      silu_mul_vectors_neon<1>(g, u, n_vec);
    } else {
      silu_mul_vectors_lanes(g, u, n_vec, width);
    }
#else
    silu_mul_vectors_lanes(g, u, n_vec, width);
#endif
    for (int64_t i = n_vec; i < n; ++i) g[i] = ggml::silu(g[i]) * u[i];
  }
}

void softmax_inplace(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {

// ggml's rotate_pairs as its x86-64 builds compile it (contracted to fused multiply-adds):
// fma(x0, c, -(x1 s)) and fma(x0, s, x1 c). One ulp here flips later Q8_0 roundings.
// cos_sin [n_pairs] (cos, sin); v [n_heads, head_dim]. Inlined into both callers below, so the
// builtin fma is one instruction where the caller targets FMA and libm's fmaf otherwise.
[[gnu::always_inline]] inline void rotate_heads_body(float* v, const float* cos_sin, int n_heads,
                                                     int head_dim, int n_pairs, RopeMode mode) {
  for (int h = 0; h < n_heads; ++h) {
    float* vh = v + h * head_dim;
    for (int i = 0; i < n_pairs; ++i) {
      const int i0 = mode == RopeMode::kNorm ? 2 * i : i;
      const int i1 = mode == RopeMode::kNorm ? 2 * i + 1 : i + n_pairs;
      const float c = cos_sin[2 * i];
      const float s = cos_sin[2 * i + 1];
      const float x0 = vh[i0];
      const float x1 = vh[i1];
      vh[i0] = __builtin_fmaf(x0, c, -(x1 * s));
      vh[i1] = __builtin_fmaf(x0, s, x1 * c);
    }
  }
}

#if defined(PARETO_HAVE_AVX2_KERNELS)
PARETO_AVX2_TARGET void rotate_heads_fma(float* v, const float* cos_sin, int n_heads, int head_dim,
                                         int n_pairs, RopeMode mode) {
  rotate_heads_body(v, cos_sin, n_heads, head_dim, n_pairs, mode);
}
#endif

void rotate_heads_portable(float* v, const float* cos_sin, int n_heads, int head_dim, int n_pairs,
                           RopeMode mode) {
  rotate_heads_body(v, cos_sin, n_heads, head_dim, n_pairs, mode);
}

}  // namespace

void rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                         float dims[2]) {
  // ggml_rope_yarn_corr_dim: n_dims * logf(n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 *
  // logf(base)), each operation rounded to float (libggml-base is built without contraction).
  const auto corr_dim = [&](float n_rot) {
    const float pi = std::numbers::pi_v<float>;  // (float)M_PI
    return static_cast<float>(n_dims) *
           std::log(static_cast<float>(n_ctx_orig) / (n_rot * 2.0f * pi)) / (2.0f * std::log(base));
  };
  const float start = std::floor(corr_dim(beta_fast));
  const float end = std::ceil(corr_dim(beta_slow));
  dims[0] = std::max(0.0f, start);
  dims[1] = std::min(static_cast<float>(n_dims - 1), end);
}

void rope_cos_sin(const RopeParams& p, int32_t pos, const float corr_dims[2], float* cos_sin) {
  const int n_pairs = p.rope_dim / 2;
  const float theta_scale = std::pow(p.base, -2.0f / static_cast<float>(p.rope_dim));
  float theta = static_cast<float>(pos);
  for (int i = 0; i < n_pairs; ++i) {
    // rope_yarn, as the haswell/zen4 builds of ggml-cpu compile it (disassembled: the ramp mix
    // and the magnitude are each one vfmadd). With no scaling every factor is 1 and exact, so
    // the angle is theta itself.
    const float extrap = p.freq_factors != nullptr ? theta / p.freq_factors[i] : theta;
    const float interp = p.freq_scale * extrap;
    float angle = interp;
    float mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) {
      const float y =
          (static_cast<float>(i) - corr_dims[0]) / std::max(0.001f, corr_dims[1] - corr_dims[0]);
      const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
      const float mix = ramp * p.ext_factor;
      angle = __builtin_fmaf(interp, 1.0f - mix, extrap * mix);
      mscale *= __builtin_fmaf(0.1f, std::log(1.0f / p.freq_scale), 1.0f);
    }
    cos_sin[2 * i] = std::cos(angle) * mscale;
    cos_sin[2 * i + 1] = std::sin(angle) * mscale;
    theta *= theta_scale;
  }
}

void rope_inplace(float* x, const int32_t* positions, int64_t n_tokens, int n_heads, int head_dim,
                  const RopeParams& params) {
  PARETO_CHECK(params.rope_dim % 2 == 0 && params.rope_dim <= head_dim);
  const int n_pairs = params.rope_dim / 2;
  float corr_dims[2] = {0.0f, 0.0f};
  if (params.ext_factor != 0.0f) {
    rope_yarn_corr_dims(params.rope_dim, params.n_ctx_orig, params.base, params.beta_fast,
                        params.beta_slow, corr_dims);
  }
  std::vector<float> cos_sin(static_cast<size_t>(params.rope_dim));  // [n_pairs] (cos, sin)
#if defined(PARETO_HAVE_AVX2_KERNELS)
  const auto rotate = float_simd_supported() ? rotate_heads_fma : rotate_heads_portable;
#else
  const auto rotate = rotate_heads_portable;
#endif
  for (int64_t t = 0; t < n_tokens; ++t) {
    rope_cos_sin(params, positions[t], corr_dims, cos_sin.data());
    rotate(x + t * n_heads * head_dim, cos_sin.data(), n_heads, head_dim, n_pairs, params.mode);
  }
}

void rope_inplace(float* x, const int32_t* positions, int64_t n_tokens, int n_heads, int head_dim,
                  int rope_dim, float base, RopeMode mode) {
  RopeParams params;
  params.rope_dim = rope_dim;
  params.mode = mode;
  params.base = base;
  rope_inplace(x, positions, n_tokens, n_heads, head_dim, params);
}

}  // namespace pareto::kernels
