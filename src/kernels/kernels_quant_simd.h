// Internal: SIMD versions of the Q8_0 / Q4_0 kernels of the default (llama.cpp-ordered) path, and
// the K-quant matmul rows. Every function here is bit-identical to the portable lane loops it
// replaces: the integer block sums are exact in any order, and the float accumulation keeps the
// per-lane fused multiply-add order of llama.cpp's AVX2 build (lane t of a 32-block = the integer
// dot of elements 4t..4t+3; acc[t] = fma(d_w * d_x, lane, acc[t]); ggml::hsum8 at the end).
// On x86-64 the AVX2+FMA+F16C versions are chosen at run time (__builtin_cpu_supports); on
// AArch64 the NEON versions run (kernels_quant_neon.cpp, kquants_neon.cpp: baseline Advanced SIMD,
// plus SDOT where the CPU reports it; 8 float lanes = two float32x4_t); other CPUs run the
// reference lane loops.
#pragma once

#include <cstdint>

#include "kernels/kernel_set.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"

namespace pareto::kernels {

// Whether the AVX2+FMA+F16C versions run on this CPU.
bool quant_simd_available();

// quantize_activations_q8_0 (quant.h), vectorized; bit-identical.
void quantize_activations_q8_0_fast(const float* x, BlockQ8_0* y, int64_t n);

// F32 -> F16, round to nearest even (f32_to_f16 per element; vcvtps2ph on x86 with F16C, whose
// NaNs keep their payload's top bits: only NaN bits may differ from f32_to_f16's).
void f32_to_f16_row_fast(const float* x, uint16_t* y, int64_t n);

// Row dot products of n elements (a multiple of 32) against a Q8_0 activation row.
// "lanes": ggml_vec_dot_{q8_0,q4_0}_q8_0 / tinyBLAS_Q0_AVX order (8 fma lanes, then hsum8).
// "repacked": ggml_gemv/gemm_q4_0_8x8_q8_0 order (acc = fma((float)block_sum, d_w * d_x, acc)).
float dot_q8_0_lanes_fast(const uint8_t* w, const uint8_t* x, int64_t n);
float dot_q4_0_lanes_fast(const uint8_t* w, const uint8_t* x, int64_t n);
float dot_q4_0_repacked_fast(const uint8_t* w, const uint8_t* x, int64_t n);
// "block" (QuantOrder::kBlock, kernel_path.h): the repacked order's formula for Q8_0 weights, as
// llama.cpp's AMX build computes it.
float dot_q8_0_block_fast(const uint8_t* w, const uint8_t* x, int64_t n);
// The portable lane loops (the reference the fast versions are tested against).
float dot_q8_0_lanes_ref(const uint8_t* w, const uint8_t* x, int64_t n);
float dot_q4_0_lanes_ref(const uint8_t* w, const uint8_t* x, int64_t n);
float dot_q4_0_repacked_ref(const uint8_t* w, const uint8_t* x, int64_t n);
float dot_q8_0_block_ref(const uint8_t* w, const uint8_t* x, int64_t n);

// MatmulRowsFn: Q8_0 weights x Q8_0 activations, lanes order. Streams each weight row once and
// tiles up to 4 tokens per weight block load.
void matmul_q8_0_rows_fast(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y);
// MatmulRowsFn: Q8_0 weights x Q8_0 activations, block order (AVX2 on x86; the reference loop
// elsewhere). 8 rows x up to 4 tokens per step.
void matmul_q8_0_block_rows_fast(const WeightView& w, const PreparedActivations& x,
                                 int64_t row_begin, int64_t row_end, float* y);
// MatmulRowsFn: Q4_0 weights x Q8_0 activations; repacked order when w.rows % 8 == 0 (llama.cpp
// repacks such matrices on x86), lanes order otherwise.
void matmul_q4_0_rows_fast(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y);

// dot_kquant_q8k (kquants.h, llama.cpp's AVX2 order) in AVX2 intrinsics; bit-identical
// (kquants_simd.cpp).
float dot_kquant_q8k_fast(TensorType type, const void* w_row, const void* q8k_row, int64_t n);

// MatmulRowsFn: Q4_K / Q5_K / Q6_K weights x Q8_K activations, llama.cpp's AVX2 order
// (dot_kquant_q8k), and ggml's generic order (dot_kquant_q8k_scalar).
void matmul_kquant_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                        int64_t row_end, float* y);
void matmul_kquant_rows_scalar(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                               int64_t row_end, float* y);
// MatmulRowsFn: the same in llama.cpp's AMX order (dot_kquant_q8k_block; QuantOrder::kBlock).
void matmul_kquant_block_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                              int64_t row_end, float* y);

// The portable lane loops of dot_kquant_q8k (llama.cpp's AVX2 order) that dot_kquant_q8k replaces
// with AVX2 or NEON code (the test oracle).
float dot_kquant_q8k_ref(TensorType type, const void* w_row, const void* q8k_row, int64_t n);

// Whether the NEON versions below are compiled in and run (AArch64 builds).
bool quant_neon_available();
// Whether this CPU has the dot-product extension (SDOT; checked at run time) and the NEON code
// was built to use it. The dispatchers pass it as `sdot` below; both forms give the same bits
// (tests call both).
bool quant_neon_sdot_supported();

#if defined(__aarch64__) && defined(__ARM_NEON)
// NEON versions (AArch64 only), bit-identical to the references above; the *_fast entry points
// and dot_kquant_q8k / quantize_row_q8_K call them. n: elements (a multiple of 32); n_blocks:
// K-quant super-blocks of 256.
// sdot: use SDOT (only where quant_neon_sdot_supported()).
void quantize_activations_q8_0_neon(const float* x, BlockQ8_0* y, int64_t n);
float dot_q8_0_lanes_neon(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot);
float dot_q4_0_lanes_neon(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot);
float dot_q4_0_repacked_neon(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot);
void matmul_q8_0_rows_neon(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y, bool sdot);
void matmul_q4_0_rows_neon(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y, bool sdot);
float dot_q4_K_q8_K_neon(const BlockQ4_K* x, const BlockQ8_K* y, int64_t n_blocks, bool sdot);
float dot_q5_K_q8_K_neon(const BlockQ5_K* x, const BlockQ8_K* y, int64_t n_blocks, bool sdot);
float dot_q6_K_q8_K_neon(const BlockQ6_K* x, const BlockQ8_K* y, int64_t n_blocks, bool sdot);
void quantize_row_q8_K_neon(const float* x, BlockQ8_K* y, int64_t n_blocks);
// matmul_kquant_rows: prefill unpacks each weight super-block once for 4 tokens.
void matmul_kquant_rows_neon(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                             int64_t row_end, float* y, bool sdot);
#endif

}  // namespace pareto::kernels
