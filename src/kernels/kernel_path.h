// Which implementation of the kernels runs. Every path computes the same operations in the same
// precision (activation rounding included); they differ only in summation order and speed.
// kScalar is the plain reference loop (one accumulator, elements in order). kPortable is the
// default: portable C++ that reproduces llama.cpp's x86 AVX2 summation orders lane for lane, so
// that quantized models round their activations as llama.cpp does. A SIMD path (Highway) slots in
// beside them in kernel_set.h and must keep kPortable's lane structure.
#pragma once

#include <string_view>

namespace pareto::kernels {

enum class KernelPath {
  kScalar,
  kPortable,
};

// kScalar when `force_scalar` is set or the environment has PARETO_SCALAR_KERNELS=1; otherwise
// the fastest path available.
KernelPath select_kernel_path(bool force_scalar);
std::string_view kernel_path_name(KernelPath path);

}  // namespace pareto::kernels
