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
#include "kv/kv_policy.h"
#include "model/batch.h"

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

// Receives attention weights for the KV-budget policies (kv/kv_policy.h). When
// ForwardOptions::attention_observer is set, after each layer's attention the forward computes,
// for every causal sequence of the batch that wants() them, the softmax weights of its new queries
// over its cache's entries: per KV head, one row per query and query head sharing the KV head
// (weights[(q * group + j) * length + e], entry order; entries at later positions 0). Unset:
// nothing computed.
class AttentionObserver {
 public:
  virtual ~AttentionObserver() = default;
  virtual bool wants(int seq) const = 0;
  virtual void observe(int seq, int layer, int head, std::span<const float> weights, int n_queries,
                       int group, int length) = 0;
};

// Routes each sequence's attention weights to its KV policy, for the policies that need them.
class KvPolicyObserver final : public AttentionObserver {
 public:
  // policy null: sequence `seq` has none.
  void set(int seq, kv::KvPolicy* policy) {
    if (seq >= static_cast<int>(policies_.size())) policies_.resize(static_cast<size_t>(seq) + 1);
    policies_[static_cast<size_t>(seq)] = policy;
  }
  bool wants(int seq) const override {
    return seq < static_cast<int>(policies_.size()) && policies_[static_cast<size_t>(seq)] &&
           policies_[static_cast<size_t>(seq)]->needs_attention();
  }
  void observe(int seq, int layer, int head, std::span<const float> weights, int n_queries,
               int group, int length) override {
    policies_[static_cast<size_t>(seq)]->observe(layer, head, weights, n_queries, group, length);
  }

 private:
  std::vector<kv::KvPolicy*> policies_;
};

// Where a forward leaves the residual stream of chosen rows: at the input of every layer and after
// the last one (before the output norm). Self-speculation's layer selection (CLaSp) compares them.
struct ResidualCapture {
  std::vector<int32_t> rows;  // batch rows to capture, set by the caller; each must want logits
  // Written by the forward: [rows.size()][n_layers + 1][dim]. A skipped layer's input and output
  // are the same state.
  std::vector<float> values;
};

struct ForwardOptions {
  // For the single-sequence forward only: logits for every token of the batch ([n_tokens,
  // n_vocab]) or only the last ([1, n_vocab]).
  bool all_logits = false;
  // Force the scalar reference kernels (fidelity comparisons).
  bool scalar_kernels = false;
  // Which llama.cpp build's summation order to reproduce; unset: the model's (ModelLoadOptions).
  // Used by the differential tests to check every order.
  std::optional<kernels::KernelPath> kernel_path;
  // Online softmax (llama.cpp's -fa) or the default score rows; see kernels/attention.h.
  kernels::AttentionAlgorithm attention = kernels::AttentionAlgorithm::kSoftmaxRows;
  // Online softmax, decode and verification steps: a KV head's keys and values are read from the
  // cache a block of entries at a time (kernels::KvBlockReader) when in f32 they would take more
  // than this many bytes, else decoded whole first (one call instead of one per 16 entries). Same
  // results either way. At 16k entries of head size 64 the whole copy made decode 22% slower.
  size_t online_block_read_bytes = size_t{256} << 10;
  // Batch-invariant numerics: every row is computed in the order a single-token forward uses
  // (vec_dot, one query at a time), whatever else is in the batch, so a sequence's logits do not
  // depend on its batch. Off: llama.cpp's order, where batches of 2+ rows take tinyBLAS and the
  // batched attention (prefill logits then match llama.cpp's prefill bit for bit).
  bool batch_invariant = false;
  // Layers to skip (1: skipped; empty: none): self-speculative drafting runs the target with a
  // subset of its layers (LayerSkip, CLaSp). A skipped layer leaves the residual stream as it is
  // and appends no KV entries; the first and the last layer cannot be skipped. A cache used with
  // one skip set must not be used with another.
  std::span<const uint8_t> skip_layers;
  AttentionObserver* attention_observer = nullptr;
  ResidualCapture* residuals = nullptr;  // unset: nothing captured
};

struct ModelLoadOptions {
  // The kernels' summation order; unset: the order llama.cpp would use on this CPU.
  std::optional<kernels::KernelPath> kernel_path;
  // Pack quantized matrices for the AVX-512 VNNI kernels and copy the others onto huge pages
  // (same results, faster); off: the kernels read the mapped file as it is.
  bool place_weights = true;
  // Convert the file's float matrices (F32, F16, BF16) to this type while loading, as
  // llama-quantize would have written them (F16, BF16, Q8_0 or Q4_0; parse_weight_type): a
  // draft model read at a quarter of its F32 bytes. Unset: the file's types.
  std::optional<TensorType> weight_type;
};

// "f16", "bf16", "q8_0" or "q4_0" (ModelLoadOptions::weight_type); an error names the valid ones.
Result<TensorType> parse_weight_type(std::string_view name);

class Model {
 public:
  // Errors name the file and the problem: unknown architecture, missing metadata key, missing
  // tensor, tensor shape not as the config implies (expected vs found), unsupported tensor type.
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<const formats::ModelFile> file,
                                             const ModelLoadOptions& options = {});
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  const formats::ModelFile& file() const { return *file_; }

  kernels::KernelPath kernel_path() const { return kernel_path_; }

  // A cache with its own pool (tests, benchmarks); the engine makes caches in a shared pool.
  kv::KvCache make_cache(int capacity, kv::KvType key_type = kv::KvType::kF32,
                         kv::KvType value_type = kv::KvType::kF32) const;
  // Pool options for this model's KV shape.
  kv::KvPoolOptions kv_pool_options(kv::KvType key_type, kv::KvType value_type,
                                    int64_t max_pages = 0) const;

  // Evaluates a batch (batch.h) of entries of the sequences whose caches are `caches` (entry.seq
  // indexes it): appends every entry's keys and values to its cache, then attends. Writes
  // [rows with logits set, n_vocab] to `logits`, in batch order. `workspace` is reused across
  // calls. Errors (nothing appended): empty batch, a token, sequence or parent out of range, a
  // sequence's entries not consecutive, a cache whose shape differs from the model, a cache
  // without room (kContextOverflow) or a pool without pages (kResourceExhausted).
  virtual Status forward(std::span<const BatchEntry> batch, std::span<kv::KvCache* const> caches,
                         std::vector<float>& logits, ForwardWorkspace& workspace, ThreadPool& pool,
                         const ForwardOptions& options = {}) const = 0;

  // One sequence: evaluates `tokens` at positions cache.n_tokens() .. + n-1, causal, and writes
  // logits as options.all_logits says. Allocates a workspace per call (tests, tools).
  Status forward(std::span<const int32_t> tokens, kv::KvCache& cache, std::vector<float>& logits,
                 ThreadPool& pool, const ForwardOptions& options = {}) const;

 protected:
  Model(std::shared_ptr<const formats::ModelFile> file, ModelConfig config,
        kernels::KernelPath kernel_path)
      : file_(std::move(file)), config_(std::move(config)), kernel_path_(kernel_path) {}
  std::shared_ptr<const formats::ModelFile> file_;
  ModelConfig config_;
  kernels::KernelPath kernel_path_;
};

}  // namespace pareto::model
