// Elementwise and per-row operations of the transformer layers, in llama.cpp's CPU order of
// operations (noted per function) so results agree with it to f32 rounding.
#pragma once

#include <cstdint>

#include "kernels/kernel_path.h"

namespace pareto::kernels {

// For each of n_rows rows of x [n_rows, n]: y = (x * (1 / sqrt(mean(x^2) + eps))) * weight.
// The sum of squares is accumulated in double and the mean rounded to float (ggml rms_norm),
// then the normalized row is multiplied by weight [n] (a separate ggml_mul in llama.cpp).
// y may alias x.
void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t n, float eps, float* y);

// y[i] += x[i] for i < n.
void add_inplace(float* y, const float* x, int64_t n);

// x[r, i] += bias[i] for each of n_rows rows of length n.
void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n);

// For each of n_rows rows of length n: gate[i] = silu(gate[i]) * up[i], silu(v) = v / (1 +
// exp(-v)), with exp evaluated as ggml does (its vector exp for full vectors, libm for the row's
// tail).
// `path` picks the vector exp the mirrored llama.cpp build uses (8- or 16-wide).
void silu_mul_inplace(float* gate, const float* up, int64_t n_rows, int64_t n,
                      KernelPath path = KernelPath::kPortable);

// Softmax of x [n] in place: exp(x - max) with the sum in double, then scaled by 1 / sum.
void softmax_inplace(float* x, int64_t n);

enum class RopeMode {
  kNorm,  // rotates (x[2i], x[2i+1]) (llama.cpp LLAMA_ROPE_TYPE_NORM)
  kNeox,  // rotates (x[i], x[i + rope_dim/2]) (LLAMA_ROPE_TYPE_NEOX)
};

// RoPE as llama.cpp's ggml_rope_ext computes it (ggml-cpu ops.cpp: ggml_rope_cache_init,
// rope_yarn; ggml.c: ggml_rope_yarn_corr_dims). The defaults are plain RoPE.
struct RopeParams {
  int rope_dim = 0;  // n_dims: the leading dims of each head that turn (even, <= head_dim)
  RopeMode mode = RopeMode::kNorm;
  float base = 10000.0f;     // freq_base
  float freq_scale = 1.0f;   // 1 / rope.scaling.factor for linear and YaRN scaling, else 1
  float ext_factor = 0.0f;   // YaRN: weight of the extrapolation ramp (llama.cpp: 1 with YaRN)
  float attn_factor = 1.0f;  // magnitude factor of cos and sin (YaRN's mscale times attn_factor)
  float beta_fast = 32.0f;   // YaRN: rotations per context where the ramp starts
  float beta_slow = 1.0f;    // ... and where it ends
  int n_ctx_orig = 0;        // YaRN: the original (pre-extension) context length
  // [rope_dim / 2] per-pair divisors of the angle (GGUF rope_freqs.weight), or null for none.
  const float* freq_factors = nullptr;
};

// YaRN's correction range [low, high] in pairs (ggml_rope_yarn_corr_dims, float arithmetic):
// floor/ceil of n_dims * log(n_ctx_orig / (beta * 2 pi)) / (2 log base) for beta_fast/beta_slow,
// clamped to [0, n_dims - 1].
void rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float base, float beta_fast, float beta_slow,
                         float dims[2]);

// The (cos, sin) of every pair at position `pos` into cos_sin [rope_dim] (pairs interleaved), as
// ggml_rope_cache_init builds them in float: theta_0 = pos, theta_{i+1} = theta_i * s with
// s = powf(base, -2 / rope_dim); per pair, extrap = theta_i / freq_factors[i] (when given),
// interp = freq_scale * extrap, and the angle is interp, or with ext_factor != 0 YaRN's
// fma(interp, 1 - mix, extrap * mix), mix = ext_factor * (1 - clamp((i - low) / max(0.001,
// high - low), 0, 1)), with the magnitude attn_factor * fma(0.1, log(1 / freq_scale), 1) (ggml's
// x86-64 builds contract both to fused multiply-adds); then cos and sin times the magnitude.
// `corr_dims`: rope_yarn_corr_dims of p (computed by the caller once).
void rope_cos_sin(const RopeParams& p, int32_t pos, const float corr_dims[2], float* cos_sin);

// Rotary position embedding of x [n_tokens, n_heads, head_dim] in place, token t at positions[t]:
// pair i (i < rope_dim/2) turns by rope_cos_sin's angle; dims >= rope_dim are left as they are.
// With default scaling the angle is positions[t] * base^(-2i/rope_dim), built as ggml does.
void rope_inplace(float* x, const int32_t* positions, int64_t n_tokens, int n_heads, int head_dim,
                  const RopeParams& params);

// Plain RoPE (no scaling, no frequency factors).
void rope_inplace(float* x, const int32_t* positions, int64_t n_tokens, int n_heads, int head_dim,
                  int rope_dim, float base, RopeMode mode);

}  // namespace pareto::kernels
