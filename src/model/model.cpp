#include "model/model.h"

#include "model/decoder.h"

namespace pareto::model {

Result<std::unique_ptr<Model>> Model::load(std::shared_ptr<const formats::ModelFile> file) {
  if (!file) return make_error("model: no model file given");
  PARETO_TRY(const std::string arch, file->metadata().get_string("general.architecture"));
  if (arch == "llama") return detail::load_llama(std::move(file));
  if (arch == "qwen2") return detail::load_qwen2(std::move(file));
  return make_error("model: ", file->path(), ": unknown architecture '", arch,
                    "' (supported: llama, qwen2)");
}

kv::KvCache Model::make_cache(int capacity) const {
  return kv::KvCache(kv::KvShape{config_.n_layers, config_.n_kv_heads, config_.head_dim, capacity});
}

}  // namespace pareto::model
