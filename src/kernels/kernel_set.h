// Internal: the table of inner kernels one KernelPath provides. Public entry points (matmul.h,
// attention.h) prepare inputs, split work over the ThreadPool and call into the selected table.
#pragma once

#include <cstdint>
#include <string_view>

#include "kernels/attention.h"
#include "kernels/kernel_path.h"
#include "kernels/matmul.h"

namespace pareto::kernels {

// Activations already converted to activation_type(weight type): [n_tokens, cols].
struct PreparedActivations {
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;
  int64_t row_bytes = 0;
  int64_t n_tokens = 0;
  const uint8_t* row(int64_t t) const { return data + t * row_bytes; }
};

// Computes y[t * w.rows + r] for r in [row_begin, row_end) and every token.
using MatmulRowsFn = void (*)(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                              int64_t row_end, float* y);
// Computes the outputs of work items [begin, end), item = token * n_heads + head.
using AttentionItemsFn = void (*)(const AttentionArgs& args, int64_t begin, int64_t end);

struct KernelSet {
  std::string_view name;
  MatmulRowsFn matmul_f32;
  MatmulRowsFn matmul_f16;
  MatmulRowsFn matmul_bf16;
  MatmulRowsFn matmul_q8_0;
  MatmulRowsFn matmul_q4_0;
  // F16 weights x F32 activations left unrounded (x.type F32), tinyBLAS lanes for every token
  // count: llama.cpp's AMX build for the F16 matrices it takes (f16_f32_activations,
  // kernel_path.h). cols % 16 == 0.
  MatmulRowsFn matmul_f16_f32act;
  AttentionItemsFn attention;  // AttentionAlgorithm::kSoftmaxRows
  // AttentionAlgorithm::kOnlineSoftmax; its items are numbered KV head first (attention_online.h).
  AttentionItemsFn attention_online;
  // Width of the vector exp/silu: elementwise loops run full chunks of this many elements
  // through ggml's vector routine and the rest through libm, as the mirrored build does.
  int elementwise_width;
  // Batch-invariant float rows: every token of x summed as the one-token call sums it (the vec_dot
  // form), all tokens in one call so that weights loaded for the first token serve the others.
  // Null: the caller runs the one-token entry token by token.
  MatmulRowsFn matmul_f32_each_token = nullptr;
  MatmulRowsFn matmul_f16_each_token = nullptr;
  MatmulRowsFn matmul_bf16_each_token = nullptr;
};

const KernelSet& scalar_kernel_set();
// llama.cpp's AVX2 / AVX-512 orders: on x86-64 the float entries run in AVX2+FMA+F16C
// (kernels_float_simd.cpp) or, for the AVX-512 order, AVX-512 (kernels_float_avx512.cpp) when the
// CPU has them, the lane loops otherwise; on AArch64 in NEON (kernels_float_neon.cpp). Results
// are identical either way.
const KernelSet& portable_kernel_set();         // llama.cpp AVX2 order
const KernelSet& portable_avx512_kernel_set();  // llama.cpp AVX-512 order
// The lane-loop statements of the same orders (kernels_portable.cpp): the fallback, and the
// reference the SIMD entries are tested against.
const KernelSet& portable_lanes_kernel_set();
const KernelSet& portable_avx512_lanes_kernel_set();
// Whether portable_kernel_set()'s float entries are the AVX2 ones on this CPU (x86-64 only; see
// float_neon_supported() for AArch64).
bool float_simd_supported();
// The AVX-512 order's float entries in native AVX-512 F/BW/VL (kernels_float_avx512.cpp) and in
// AVX2 as two 8-lane halves (kernels_float_simd.cpp); each falls back to the lane loops where the
// CPU lacks its features. portable_avx512_kernel_set() is the first of them the CPU supports.
const KernelSet& portable_avx512_native_kernel_set();
const KernelSet& portable_avx512_avx2_kernel_set();
bool float_avx512_supported();
// The native set's attention entries (kernels_float_avx512_attention.cpp; x86-64 builds only,
// called only where float_avx512_supported()).
void avx512_attention_items(const AttentionArgs& args, int64_t begin, int64_t end);
void avx512_attention_online_items(const AttentionArgs& args, int64_t begin, int64_t end);
// Both orders' float entries in AArch64 NEON (kernels_float_neon.cpp): what portable_kernel_set()
// and portable_avx512_kernel_set() return there. The lane loops where NEON is not built (x86).
const KernelSet& portable_neon_kernel_set();
const KernelSet& portable_avx512_neon_kernel_set();
bool float_neon_supported();
// The AVX-512 order's set with Q8_0 in the block order (matmul.cpp; kernel_path.h).
const KernelSet& llamacpp_amx_kernel_set();
const KernelSet& kernel_set(KernelPath path);

}  // namespace pareto::kernels
