// Matrix multiplication of a weight matrix (any supported type, read in place from the mapped file)
// by a batch of activation rows, and embedding lookup. Numerics follow llama.cpp's CPU backend:
// activations are first converted to the weight type's dot-product partner (activation_type), so
// Q8_0/Q4_0 weights meet Q8_0-quantized activations, F16 weights meet F16 activations, BF16 meets
// BF16, and F32 meets F32; products are summed in f32.
#pragma once

#include <cstdint>
#include <span>

#include "base/tensor_type.h"
#include "base/thread_pool.h"
#include "kernels/kernel_path.h"

namespace pareto::kernels {

// A row-major matrix of `rows` outputs by `cols` inputs in `type`'s block layout; a GGUF tensor
// of shape {cols, rows}. cols must be a multiple of the type's block size.
struct WeightView {
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  // Optional packed copy of the full 16-row groups (quant_packed.h), owned elsewhere; when set,
  // matmul() uses the packed kernels unless the path is kScalar or the CPU lacks AVX-512 VNNI.
  // Results are identical either way; `data` stays valid and is read for the other rows.
  const uint8_t* packed = nullptr;

  int64_t row_bytes() const { return pareto::row_bytes(type, cols); }
  const uint8_t* row(int64_t r) const { return data + r * row_bytes(); }
};

// ggml's vec_dot_type: what activations are converted to before meeting weights of `weight_type`.
TensorType activation_type(TensorType weight_type);

// y[t * w.rows + r] = sum_c W[r, c] * x[t * w.cols + c] for t < n_tokens; x: [n_tokens, cols],
// y: [n_tokens, rows]. Parallel over rows. batch_invariant: every token's row is computed exactly
// as in a batch of one (llama.cpp's order switches routine with the batch size: tinyBLAS, repacked
// gemm); otherwise llama.cpp's choice for this batch size.
void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            KernelPath path, bool batch_invariant = false);

// One matrix of several that multiply the same activations, and where its rows go.
struct MatmulOutput {
  WeightView w;
  float* y = nullptr;  // [n_tokens, w.rows]
};

// The matmul of each output's matrix by the same x: one activation conversion and one pool
// dispatch for all of them (a layer's q, k and v; gate and up), the same results bit for bit as
// separate calls. Matrices that cannot share a kernel (other type, columns, packing or order)
// are run one after another.
void matmul(std::span<const MatmulOutput> outs, const float* x, int64_t n_tokens, ThreadPool& pool,
            KernelPath path, bool batch_invariant = false);

// Embedding lookup: dst[i * w.cols + c] = W[ids[i], c] (dequantized). ids must be < w.rows.
// Rows with a packed copy are read from it (same values).
void get_rows(const WeightView& w, std::span<const int32_t> ids, float* dst);

}  // namespace pareto::kernels
