// Block layouts of the quantized types exactly as GGUF/ggml define them, and conversions between
// them and f32. Weight quantization follows ggml's reference (quantize_row_*_ref); activation
// quantization for matmuls follows what llama.cpp's CPU backend does on x86 (see
// quantize_activations_q8_0).
#pragma once

#include <cstdint>
#include <span>

#include "base/tensor_type.h"

namespace pareto::kernels {

inline constexpr int64_t kQuantBlock = 32;  // elements per Q8_0 / Q4_0 block

// Q8_0: value = qs[i] * d.
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQuantBlock];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: value = (nibble - 8) * d; qs[j] holds element j in its low nibble, element j + 16 in its
// high nibble.
struct BlockQ4_0 {
  uint16_t d;  // fp16 scale
  uint8_t qs[kQuantBlock / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// ggml's quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d) (half away from zero).
void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
// ggml's quantize_row_q4_0_ref: d = (signed value of largest magnitude) / -8,
// q = min(15, (int8)(x / d + 8.5)).
void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n);

// The activation quantization llama.cpp's CPU backend applies before a Q8_0/Q4_0 dot product
// (x86 quantize_row_q8_0): d = amax / 127 (stored as fp16), q = round-half-even(x * (127 / amax)).
void quantize_activations_q8_0(const float* x, BlockQ8_0* y, int64_t n);

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);

// Converts n elements of a row of `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q8_K) to
// f32. n must be a multiple of the type's block size.
void dequantize_row(TensorType type, const uint8_t* src, float* dst, int64_t n);
// Encodes n f32 values as `type` (weight quantization: the reference rules above and kquants.h's
// quantize_row_q*_K; Q8_K: quantize_row_q8_K); writes
// row_bytes(type, n) bytes.
void quantize_row(TensorType type, const float* src, uint8_t* dst, int64_t n);

}  // namespace pareto::kernels
