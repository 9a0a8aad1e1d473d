// Internal: the pieces shared by the Llama-family architectures (llama.cpp, qwen2.cpp): config
// keys, tensor binding with validation, and the decoder-only transformer forward pass.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant_packed.h"
#include "model/model.h"

namespace pareto::model::detail {

// One transformer block's weights: matrices are views into the mapped file or into the copies
// DecoderWeights::packed owns (decoder_load.cpp); vectors are F32.
struct LayerWeights {
  const float* attn_norm = nullptr;  // [dim]
  kernels::WeightView attn_q;        // [n_heads * head_dim, dim]
  kernels::WeightView attn_k;        // [n_kv_heads * head_dim, dim]
  kernels::WeightView attn_v;        // [n_kv_heads * head_dim, dim]
  const float* bias_q = nullptr;     // [n_heads * head_dim], only with qkv_bias
  const float* bias_k = nullptr;     // [n_kv_heads * head_dim]
  const float* bias_v = nullptr;     // [n_kv_heads * head_dim]
  kernels::WeightView attn_output;   // [dim, n_heads * head_dim]
  const float* ffn_norm = nullptr;   // [dim]
  kernels::WeightView ffn_gate;      // [ffn_dim, dim]
  kernels::WeightView ffn_up;        // [ffn_dim, dim]
  kernels::WeightView ffn_down;      // [dim, ffn_dim]
};

struct DecoderWeights {
  kernels::WeightView token_embd;      // [n_vocab, dim]
  const float* output_norm = nullptr;  // [dim]
  kernels::WeightView output;          // [n_vocab, dim]; token_embd's data when tied
  std::vector<LayerWeights> layers;
  // Packed copies the views' `packed` pointers point into, and plain copies of the other
  // matrices that their `data` then points into (heap: stable when moved).
  std::vector<kernels::PackedWeights> packed;
};

// Reads the `<arch>.*` hyperparameters shared by llama-family files, and n_vocab from
// token_embd.weight. Leaves rope_style, qkv_bias and tied_output at their defaults.
Result<ModelConfig> read_decoder_config(const formats::ModelFile& file, const std::string& arch);

// RoPE keys and the rope_freqs.weight tensor (rope_config.cpp, which lists each decision): sets
// the rope_* fields of `config` (whose context_length and rope_dim are read) as llama.cpp derives
// them, or refuses what is not implemented. Errors name the file, the key and the value found.
Status read_rope_config(const formats::ModelFile& file, const std::string& arch,
                        ModelConfig& config);

// The kernel's RoPE parameters of a config (freq_factors point into `config`).
kernels::RopeParams rope_params(const ModelConfig& config, kernels::RopeMode mode);

// Refuses metadata keys that would change the results and that the decoder does not implement
// (refusals.cpp lists them), naming the key and the value found.
Status refuse_unsupported_keys(const formats::ModelFile& file, const std::string& arch);

// Refuses a file holding a tensor the decoder does not read for `config`, naming it.
Status refuse_unused_tensors(const formats::ModelFile& file, const ModelConfig& config);

// Finds and validates every tensor the config implies (presence, shape, type, row blocking).
// tied_output is set in `config` when the file has no output.weight.
// Matrices are converted to options.weight_type when set; placement (packing, huge pages) follows
// options.place_weights on the kernels of options' path.
Result<DecoderWeights> bind_decoder_weights(const formats::ModelFile& file, ModelConfig& config,
                                            const ModelLoadOptions& options);

// The kernel order a model loaded with `options` runs: the requested one, else this CPU's.
kernels::KernelPath resolve_kernel_path(const ModelLoadOptions& options);

// A pre-norm decoder (RMSNorm, RoPE attention with GQA, SiLU-gated FFN): llama and qwen2.
class DecoderModel final : public Model {
 public:
  DecoderModel(std::shared_ptr<const formats::ModelFile> file, ModelConfig config,
               DecoderWeights weights, kernels::KernelPath path)
      : Model(std::move(file), std::move(config), path), weights_(std::move(weights)) {}

  using Model::forward;
  Status forward(std::span<const BatchEntry> batch, std::span<kv::KvCache* const> caches,
                 std::vector<float>& logits, ForwardWorkspace& workspace, ThreadPool& pool,
                 const ForwardOptions& options) const override;

 private:
  void attend(int layer, const BatchRun& run, kv::KvCache& cache, ForwardWorkspace& ws,
              ThreadPool& pool, kernels::KernelPath path, const ForwardOptions& options) const;
  void attend_short_runs(int layer, std::span<kv::KvCache* const> caches, ForwardWorkspace& ws,
                         ThreadPool& pool, kernels::KernelPath path,
                         const ForwardOptions& options) const;
  DecoderWeights weights_;
};

// Per-architecture loaders (llama.cpp, qwen2.cpp).
Result<std::unique_ptr<Model>> load_llama(std::shared_ptr<const formats::ModelFile> file,
                                          const ModelLoadOptions& options);
Result<std::unique_ptr<Model>> load_qwen2(std::shared_ptr<const formats::ModelFile> file,
                                          const ModelLoadOptions& options);

}  // namespace pareto::model::detail
