// Model: a transformer's config and weights (views into the mapped file, never copied) and its
// forward pass. One file per architecture implements the layers; this is the common surface.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "kernels/attention.h"
#include "kernels/kernel_path.h"
#include "kv/kv_cache.h"

namespace pareto::model {

enum class RopeStyle {
  kAdjacentPairs,  // llama.cpp LLAMA_ROPE_TYPE_NORM: rotates (x[2i], x[2i+1])  (llama)
  kHalves,         // LLAMA_ROPE_TYPE_NEOX: rotates (x[i], x[i + rope_dim/2])   (qwen2)
};

// `<arch>.rope.scaling.type` (llama.cpp's llama_rope_scaling_type; "longrope" is refused).
enum class RopeScaling { kNone, kLinear, kYarn };

struct ModelConfig {
  std::string arch;  // "llama", "qwen2"
  int n_vocab = 0;
  int dim = 0;  // embedding length
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int ffn_dim = 0;
  int context_length = 0;  // trained context
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  int rope_dim = 0;
  RopeStyle rope_style = RopeStyle::kAdjacentPairs;
  // RoPE scaling, derived from the GGUF keys as llama.cpp derives its context parameters
  // (rope_config.cpp); the defaults are plain RoPE. See kernels::RopeParams for the math.
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_freq_scale = 1.0f;   // 1 / rope.scaling.factor (linear, YaRN), else 1
  float rope_ext_factor = 0.0f;   // YaRN's ramp weight: 1 with YaRN, else 0
  float rope_attn_factor = 1.0f;  // cos/sin magnitude: YaRN's correction x rope.scaling.attn_factor
  float rope_beta_fast = 32.0f;   // YaRN ramp bounds (llama.cpp's defaults for llama and qwen2)
  float rope_beta_slow = 1.0f;
  int rope_n_ctx_orig = 0;  // rope.scaling.original_context_length, else context_length
  std::vector<float> rope_freq_factors;  // rope_freqs.weight [rope_dim / 2]; empty when absent
  bool qkv_bias = false;
  bool tied_output = false;  // output projection reuses token_embd
};

struct ForwardOptions {
  // Logits for every token of the batch ([n_tokens, n_vocab]) or only the last ([1, n_vocab]).
  bool all_logits = false;
  // Force the scalar reference kernels (fidelity comparisons).
  bool scalar_kernels = false;
  // Which llama.cpp build's summation order to reproduce; unset: kernels::select_kernel_path
  // (environment, then the CPU). Used by the differential tests to check both orders.
  std::optional<kernels::KernelPath> kernel_path;
  // Online softmax (llama.cpp's -fa) or the default score rows; see kernels/attention.h.
  kernels::AttentionAlgorithm attention = kernels::AttentionAlgorithm::kSoftmaxRows;
};

class Model {
 public:
  // Errors name the file and the problem: unknown architecture, missing metadata key, missing
  // tensor, tensor shape not as the config implies (expected vs found), unsupported tensor type.
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<const formats::ModelFile> file);
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  const formats::ModelFile& file() const { return *file_; }

  kv::KvCache make_cache(int capacity) const;

  // Evaluates `tokens` at positions cache.n_tokens() .. + n-1, causal within the batch, appends
  // their keys and values to `cache`, and writes logits to `logits` (resized as ForwardOptions
  // says). Errors: empty batch, token id out of range, cache capacity exceeded.
  virtual Status forward(std::span<const int32_t> tokens, kv::KvCache& cache,
                         std::vector<float>& logits, ThreadPool& pool,
                         const ForwardOptions& options = {}) const = 0;

 protected:
  Model(std::shared_ptr<const formats::ModelFile> file, ModelConfig config)
      : file_(std::move(file)), config_(std::move(config)) {}
  std::shared_ptr<const formats::ModelFile> file_;
  ModelConfig config_;
};

}  // namespace pareto::model
