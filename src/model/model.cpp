#include "model/model.h"

#include "model/decoder.h"

namespace pareto::model {

Result<std::unique_ptr<Model>> Model::load(std::shared_ptr<const formats::ModelFile> file,
                                           const ModelLoadOptions& options) {
  if (!file) return make_error("model: no model file given");
  PARETO_TRY(const std::string arch, file->metadata().get_string("general.architecture"));
  if (arch == "llama") return detail::load_llama(std::move(file), options);
  if (arch == "qwen2") return detail::load_qwen2(std::move(file), options);
  return make_error_code(ErrorCode::kUnsupported, "model: ", file->path(),
                         ": unknown architecture '", arch, "' (supported: llama, qwen2)");
}

Result<TensorType> parse_weight_type(std::string_view name) {
  const std::optional<TensorType> t = parse_type_name(name);  // any case
  if (t == TensorType::F16 || t == TensorType::BF16 || t == TensorType::Q8_0 ||
      t == TensorType::Q4_0) {
    return *t;
  }
  return make_error_code(ErrorCode::kInvalidArgument, "unknown weight type '", name,
                         "' (valid: f16, bf16, q8_0, q4_0)");
}

kv::KvCache Model::make_cache(int capacity, kv::KvType key_type, kv::KvType value_type) const {
  return kv::KvCache(kv::KvShape{config_.n_layers, config_.n_kv_heads, config_.head_dim, capacity},
                     key_type, value_type);
}

kv::KvPoolOptions Model::kv_pool_options(kv::KvType key_type, kv::KvType value_type,
                                         int64_t max_pages) const {
  kv::KvPoolOptions o;
  o.n_layers = config_.n_layers;
  o.n_kv_heads = config_.n_kv_heads;
  o.head_dim = config_.head_dim;
  o.key_type = key_type;
  o.value_type = value_type;
  o.max_pages = max_pages;
  return o;
}

Status Model::forward(std::span<const int32_t> tokens, kv::KvCache& cache,
                      std::vector<float>& logits, ThreadPool& pool,
                      const ForwardOptions& options) const {
  std::vector<BatchEntry> batch(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch[i].token = tokens[i];
    batch[i].position = cache.n_tokens() + static_cast<int32_t>(i);
    batch[i].logits = options.all_logits || i + 1 == tokens.size();
  }
  ForwardWorkspace workspace;
  kv::KvCache* caches[] = {&cache};
  return forward(batch, caches, logits, workspace, pool, options);
}

}  // namespace pareto::model
