// Llama (and llama2.c checkpoints, which read as llama): no attention biases, RoPE on adjacent
// pairs (llama.cpp's NORM mode), output projection optionally tied to the embedding.
#include "model/decoder.h"

namespace pareto::model::detail {

Result<std::unique_ptr<Model>> load_llama(std::shared_ptr<const formats::ModelFile> file,
                                          const ModelLoadOptions& options) {
  PARETO_TRY(ModelConfig config, read_decoder_config(*file, "llama"));
  config.rope_style = RopeStyle::kAdjacentPairs;
  config.qkv_bias = false;
  PARETO_TRY(DecoderWeights weights, bind_decoder_weights(*file, config, options));
  return std::make_unique<DecoderModel>(std::move(file), std::move(config), std::move(weights),
                                        resolve_kernel_path(options));
}

}  // namespace pareto::model::detail
