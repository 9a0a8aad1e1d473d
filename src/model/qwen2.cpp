// Qwen2: biases on the Q, K and V projections (attn_q.bias, attn_k.bias, attn_v.bias), RoPE on
// halves (llama.cpp's NEOX mode), output projection often tied to the embedding.
#include "model/decoder.h"

namespace pareto::model::detail {

Result<std::unique_ptr<Model>> load_qwen2(std::shared_ptr<const formats::ModelFile> file,
                                          const ModelLoadOptions& options) {
  PARETO_TRY(ModelConfig config, read_decoder_config(*file, "qwen2"));
  config.rope_style = RopeStyle::kHalves;
  config.qkv_bias = true;
  PARETO_TRY(DecoderWeights weights, bind_decoder_weights(*file, config, options));
  return std::make_unique<DecoderModel>(std::move(file), std::move(config), std::move(weights),
                                        resolve_kernel_path(options));
}

}  // namespace pareto::model::detail
