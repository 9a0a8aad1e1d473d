// Which implementation of the kernels runs. Every path computes the same operations in the same
// precision (activation rounding included); they differ only in summation order and speed.
// kScalar is the plain reference loop (one accumulator, elements in order). kPortable and
// kPortableAvx512 are portable C++ that reproduce llama.cpp's x86 AVX2 or AVX-512 summation orders
// lane for lane, so that quantized models round their activations as llama.cpp does. Their SIMD
// forms (AVX2, AVX-512, AArch64 NEON; kernel_set.h) keep that lane structure bit for bit.
#pragma once

#include <optional>
#include <string_view>

namespace pareto::kernels {

enum class KernelPath {
  kScalar,
  kPortable,        // llama.cpp's x86 AVX2 build order ("llamacpp-avx2")
  kPortableAvx512,  // llama.cpp's x86 AVX-512 build order ("llamacpp-avx512")
};

// kScalar when `force_scalar` is set or the environment has PARETO_SCALAR_KERNELS=1. Otherwise
// PARETO_KERNELS=scalar|llamacpp-avx2|llamacpp-avx512 if set, else the order of the llama.cpp
// build that llama.cpp itself would load on this CPU: AVX-512 order when the CPU has AVX-512F,
// AVX2 order otherwise. Either way Pareto matches llama.cpp run on the same machine.
KernelPath select_kernel_path(bool force_scalar);
std::string_view kernel_path_name(KernelPath path);
// Parses a name as kernel_path_name prints it.
std::optional<KernelPath> parse_kernel_path(std::string_view name);

}  // namespace pareto::kernels
