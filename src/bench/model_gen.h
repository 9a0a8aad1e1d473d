// Random-weight GGUF models at the shapes of real published models, for benchmarks and tests:
// the file layout (tensor names, shapes, types, metadata) is what llama.cpp's converter and
// quantize produce, so the same file loads in Pareto and in llama.cpp; only the values are random.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/tensor_type.h"
#include "base/thread_pool.h"

namespace pareto::bench {

struct ModelShape {
  std::string_view name;    // what --shape takes: "llama-1b"
  std::string_view source;  // the public config the dimensions come from
  std::string_view arch;    // GGUF general.architecture: "llama" or "qwen2"
  int dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int ffn_dim = 0;
  int n_vocab = 0;
  int context_length = 0;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool qkv_bias = false;
  bool tied_output = false;  // no output.weight: the output projection reuses token_embd
};

// Every shape gen-model knows, tiny test shapes included.
std::span<const ModelShape> model_shapes();
// Errors list the known names.
Result<ModelShape> find_model_shape(std::string_view name);

// How matrix types are chosen.
enum class TypeMix {
  kUniform,  // every matrix has options.type
  // llama.cpp's Q4_K_M recipe (llama_tensor_get_type, no importance matrix): Q4_K everywhere
  // (token_embd included) except output.weight Q6_K, and attn_v / ffn_down Q6_K in the layers
  // where llama.cpp "uses more bits" (the first and last eighth of the layers, every third
  // between).
  kQ4_K_M,
};

struct GenerateOptions {
  TensorType type = TensorType::Q4_0;  // of every matrix (token_embd included); norms stay F32
  TypeMix mix = TypeMix::kUniform;     // kQ4_K_M ignores `type`
  uint64_t seed = 1;
  int n_layers = 0;          // > 0: overrides the shape's layer count (small test models)
  float weight_std = 0.02f;  // matrices and biases: normal(0, weight_std)
};

// Bytes of the tensor data gen-model writes for this shape and these options.
uint64_t generated_data_bytes(const ModelShape& shape, const GenerateOptions& options);

// The type of matrix `name` ("blk.3.ffn_down.weight", "output.weight", ...) in a model of
// n_layers layers under these options.
TensorType matrix_type(const GenerateOptions& options, std::string_view name, int n_layers);

// Writes the model to `path`. Weights are deterministic in (seed, tensor, element), independent
// of the pool's size. Note: formats::GgufWriter keeps every tensor in memory until write(), so
// this needs about the file's size in RAM (a 1B-parameter F16 model: 2.5 GB).
// Errors: a type gen-model cannot write (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K only), a
// dimension that is not a multiple of the type's block size (256 for K-quants), write failures.
Status generate_model(const ModelShape& shape, const GenerateOptions& options,
                      const std::string& path, ThreadPool& pool);

}  // namespace pareto::bench
