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

// Rotary position embedding of x [n_tokens, n_heads, head_dim] in place, token t at positions[t].
// Pair i (i < rope_dim/2) turns by positions[t] * base^(-2i/rope_dim); dims >= rope_dim are left
// as they are. Angles are built as ggml does: theta_0 = pos, theta_{i+1} = theta_i * scale with
// scale = powf(base, -2 / rope_dim) in float.
void rope_inplace(float* x, const int32_t* positions, int64_t n_tokens, int n_heads, int head_dim,
                  int rope_dim, float base, RopeMode mode);

}  // namespace pareto::kernels
