// K-quant block layouts (Q4_K, Q5_K, Q6_K, and the Q8_K activation type) exactly as GGUF/ggml
// define them (ggml-common.h, QK_K = 256), their conversions to and from f32, and the dot products
// of a K-quant weight row with a Q8_K activation row.
//
// Two dot-product flavours compute the same integer sums and differ only in the order of the few
// float operations per 256-element block:
//   - dot_kquant_q8k_scalar: ggml's scalar reference (ggml_vec_dot_q*_K_q8_K_generic): 8 float
//     lanes by element index mod 8, multiply then add (unfused), lanes added 0..7 at the end.
//   - dot_kquant_q8k: the default, llama.cpp's x86-64 AVX2 routine (ggml_vec_dot_q*_K_q8_K with
//     __AVX2__): lane k holds the elements whose index mod 32 is in [4k, 4k+4), blocks are
//     accumulated with fused multiply-adds, lanes reduced in hsum_float_8 order. This is what
//     llama.cpp runs on an AVX2 machine when the weights are not repacked. Written as portable lane
//     loops (auto-vectorized); on x86-64 also compiled for AVX2+FMA, chosen at run time.
//   - dot_kquant_q8k_block: llama.cpp's AMX build (QuantOrder::kBlock, kernel_path.h), for the
//     matrices it takes into its AMX buffer: per block the exact integer sums, then one or two
//     fused multiply-adds into a single accumulator, blocks in order.
// They agree to float rounding of the per-block terms (see kquants_test.cpp for the bound).
#pragma once

#include <bit>
#include <cstdint>

#include "base/tensor_type.h"

namespace pareto::kernels {

inline constexpr int64_t kQK_K = 256;    // elements per K-quant super-block
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales and mins of Q4_K / Q5_K

// Q4_K: 8 sub-blocks of 32. Element e of sub-block s = d * sc[s] * q - dmin * m[s], with q a 4-bit
// value; (sc[s], m[s]) are 6-bit values packed in `scales` (see kquant_scale_min). qs holds 4
// chunks of 64 elements: byte l of chunk c has element 64c + l in its low nibble and 64c + 32 + l
// in its high nibble.
struct BlockQ4_K {
  uint16_t d;     // fp16 super-block scale of the sub-block scales
  uint16_t dmin;  // fp16 super-block scale of the sub-block mins
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: as Q4_K with a fifth bit per element: element 64c + l takes bit 2c of qh[l] and element
// 64c + 32 + l takes bit 2c + 1 (l in [0, 32)), worth 16.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16, element = d * scales[e / 16] * (q - 32), q a 6-bit value. Each half
// of 128 elements h uses ql[64h .. 64h+64) and qh[32h .. 32h+32): for l in [0, 32), element
// 128h + l    = low nibble of ql[64h + l]       | bits 0-1 of qh[32h + l] << 4,
// 128h + 32 + l = low nibble of ql[64h + 32 + l] | bits 2-3 of qh[32h + l] << 4,
// 128h + 64 + l = high nibble of ql[64h + l]     | bits 4-5 of qh[32h + l] << 4,
// 128h + 96 + l = high nibble of ql[64h + 32 + l] | bits 6-7 of qh[32h + l] << 4.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // fp16
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K (activations of K-quant dot products): value = d * qs[e]; bsums[g] = sum of qs[16g ..
// 16g+16).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// Scale and min (6 bits each) of sub-block j in [0, 8) of a Q4_K / Q5_K block (ggml's
// get_scale_min_k4): j < 4: low 6 bits of bytes j and j + 4; j >= 4: low / high nibble of byte
// j + 4 with the top 2 bits of bytes j - 4 / j as bits 4-5.
inline void kquant_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// ggml's nearest_int: round half to even via the 1.5 * 2^23 trick; |x| must be <= 4194303.
inline int kquant_nearest_int(float x) {
  const float shifted = x + 12582912.f;
  return static_cast<int>(std::bit_cast<uint32_t>(shifted) & 0x007fffffu) - 0x00400000;
}

// Q4_K, Q5_K or Q6_K.
bool is_kquant(TensorType type);

// --- Conversions (n elements, a multiple of kQK_K; CHECKed) ---

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n);
void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n);

// ggml's quantize_row_q8_K_ref (what llama.cpp's CPU backend applies to the activations of K-quant
// matmuls): per block, max = the value of largest magnitude, iscale = -127 / max,
// q = min(127, round-half-even(iscale * x)), d = 1 / iscale. An all-zero block gets d = 0, q = 0,
// bsums = 0. Runs in AVX-512 when the CPU has it (kquants_avx512.cpp); identical bytes.
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n);
// The portable version (the reference the AVX-512 one is tested against).
void quantize_row_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n);
// Whether the AVX-512 (F/BW/VL/VNNI) K-quant kernels run on this CPU.
bool kquant_avx512_supported();

// ggml's reference weight quantizers (quantize_row_q*_K_ref, no importance matrix): Q4_K/Q5_K fit
// scale and min per sub-block by make_qkx2_quants, Q6_K a signed scale by make_qx_quants
// (rmse_type 1), then quantize the sub-block scales to 6 / 8 bits against fp16 super-block scales.
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n);
void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n);
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n);

// --- Dot products of n elements (a multiple of kQK_K) ---

// llama.cpp x86 AVX2 order (the default; see the top of this file).
float vec_dot_q4_K_q8_K(const BlockQ4_K* x, const BlockQ8_K* y, int64_t n);
float vec_dot_q5_K_q8_K(const BlockQ5_K* x, const BlockQ8_K* y, int64_t n);
float vec_dot_q6_K_q8_K(const BlockQ6_K* x, const BlockQ8_K* y, int64_t n);
// ggml's scalar generic order.
float vec_dot_q4_K_q8_K_scalar(const BlockQ4_K* x, const BlockQ8_K* y, int64_t n);
float vec_dot_q5_K_q8_K_scalar(const BlockQ5_K* x, const BlockQ8_K* y, int64_t n);
float vec_dot_q6_K_q8_K_scalar(const BlockQ6_K* x, const BlockQ8_K* y, int64_t n);

// --- Type-dispatched entry points (type: Q4_K, Q5_K or Q6_K; CHECKed) ---

// Converts n elements of a row of `type` to f32.
void dequantize_row_kquant(TensorType type, const void* src, float* dst, int64_t n);
// Encodes n f32 values as `type`; writes row_bytes(type, n) bytes.
void quantize_row_kquant(TensorType type, const float* src, void* dst, int64_t n);
// Dot product of a weight row of `type` with a Q8_K row (quantize_row_q8_K) of the same length.
float dot_kquant_q8k(TensorType type, const void* w_row, const void* q8k_row, int64_t n);
float dot_kquant_q8k_scalar(TensorType type, const void* w_row, const void* q8k_row, int64_t n);
// llama.cpp's AMX order (ggml-cpu/amx/mmq.cpp; its AMX tiles and its AVX-512 VNNI one-token
// kernel alike): per super-block, S = sum over sub-blocks of scale x (integer dot of the
// sub-block) (Q6_K: of q - 32), M = sum over sub-blocks of min x (activation sum of the
// sub-block); acc = fma((float)S, d_w * d_x, acc); Q4_K / Q5_K then acc = fma(-(float)M,
// dmin_w * d_x, acc). acc starts at 0.
float dot_kquant_q8k_block(TensorType type, const void* w_row, const void* q8k_row, int64_t n);

}  // namespace pareto::kernels
