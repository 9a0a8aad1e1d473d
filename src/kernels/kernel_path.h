// Which implementation of the kernels runs. Every path computes the same operations in the same
// precision (activation rounding included); they differ only in summation order and speed.
// kScalar is the plain reference loop (one accumulator, elements in order). kPortable and
// kPortableAvx512 are portable C++ that reproduce llama.cpp's x86 AVX2 or AVX-512 summation orders
// lane for lane, so that quantized models round their activations as llama.cpp does. Their SIMD
// forms (AVX2, AVX-512, AArch64 NEON; kernel_set.h) keep that lane structure bit for bit.
// kLlamacppAmx is the AVX-512 order with Q8_0 and K-quant matrices summed as llama.cpp's AMX
// build (ggml-cpu/amx, loaded on CPUs with AMX-INT8) sums them: one float step per block for the
// matrices it takes into AMX (quant_order below), and F16 ones against unrounded activations.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "base/tensor_type.h"

namespace pareto::kernels {

enum class KernelPath {
  kScalar,
  kPortable,        // llama.cpp's x86 AVX2 build order ("llamacpp-avx2")
  kPortableAvx512,  // llama.cpp's x86 AVX-512 build order ("llamacpp-avx512")
  kLlamacppAmx,     // llama.cpp's x86 AMX build order ("llamacpp-amx")
};

// How a path sums a quantized matrix's products with quantized activations, row by row:
//   kLanes (llama.cpp's AVX2 / AVX-512 vec_dot): Q8_0: lane t of a block is the integer dot of
//     elements 4t..4t+3; acc[t] = fma(d_w * d_x, (float)lane_t, acc[t]); ggml::hsum8(acc) at the
//     end. K-quants: llama.cpp's AVX2 order (kquants.h).
//   kBlock (llama.cpp's AMX build, its AMX tiles and its AVX-512 VNNI small-batch kernel alike):
//     one integer sum per block, then one float step per block, blocks in order, one accumulator:
//     Q8_0: s_b is the integer dot of 32-element block b; acc = fma((float)s_b, d_w * d_x, acc).
//     K-quants (kquants.h, dot_kquant_q8k_block): per 256-element super-block, S = the integer
//     sum of sub-block scale x sub-block dot, acc = fma((float)S, d_w * d_x, acc); Q4_K and Q5_K
//     then acc = fma(-(float)M, dmin_w * d_x, acc) with M = sum of sub-block min x activation sum.
// Q4_0 has one order on every path that packs it (the repacked order, already per block).
enum class QuantOrder { kLanes, kBlock };

// Whether a path multiplies an F16 matrix of rows x cols by the F32 activations as they are
// (KernelSet::matmul_f16_f32act) rather than rounded to F16 first: llama.cpp's AMX build does
// for the F16 matrices its AMX buffer takes (rows % 32 == 0, cols % 16 == 0).
inline bool f16_f32_activations(KernelPath path, int64_t rows, int64_t cols) {
  return path == KernelPath::kLlamacppAmx && rows % 32 == 0 && cols % 16 == 0;
}

// The order of a Q8_0 / Q4_K / Q5_K / Q6_K matrix of `rows` rows (kLanes for other types).
// llama.cpp's AMX build moves a matrix of these types into its AMX buffer (and so to the block
// order) only when its row count is a multiple of 32 (two 16-row tiles; K-quant row lengths are
// multiples of 256 already); other matrices stay with the AVX-512 build's vec_dot, the lanes order.
inline QuantOrder quant_order(KernelPath path, TensorType type, int64_t rows) {
  const bool amx_type = type == TensorType::Q8_0 || type == TensorType::Q4_K ||
                        type == TensorType::Q5_K || type == TensorType::Q6_K;
  return path == KernelPath::kLlamacppAmx && amx_type && rows % 32 == 0 ? QuantOrder::kBlock
                                                                        : QuantOrder::kLanes;
}

// The order of the llama.cpp build that llama.cpp itself would load on this CPU: the AMX order
// when the CPU has AMX-INT8 and AVX-512 VNNI (llama.cpp's "sapphirerapids" variant), the AVX-512
// order when it has AVX-512F, the AVX2 order otherwise. Either way Pareto matches llama.cpp run on
// the same machine. Read from CPUID only (the library reads no environment; tools map
// PARETO_KERNELS to a load option).
KernelPath native_kernel_path();
// kScalar when `force_scalar` is set, else native_kernel_path().
KernelPath select_kernel_path(bool force_scalar);
std::string_view kernel_path_name(KernelPath path);
// Parses a name as kernel_path_name prints it.
std::optional<KernelPath> parse_kernel_path(std::string_view name);
// The same, as a Result whose error names the valid kernel orders.
Result<KernelPath> kernel_path_from_name(std::string_view name);
// Whether the CPU has AMX-INT8, AVX-512 F/BW/VL and AVX-512 VNNI (x86-64; false elsewhere).
bool cpu_has_amx_int8();

}  // namespace pareto::kernels
