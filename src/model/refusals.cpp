// What a llama-family file may say that the decoder does not compute: refused, never ignored.
//
// Metadata keys (besides the RoPE ones, rope_config.cpp), each accepted only at the value that
// leaves the math as Pareto computes it, refused otherwise. Some of them llama.cpp reads for every
// architecture (attention.causal, expert_count, nextn_predict_layers); the others it reads only for
// architectures that use them (gemma2's softcapping, granite's scales, sliding windows, ALiBi,
// KQV clamping, llama4's attention temperature) and drops for llama and qwen2. A file that states
// them was made for that math, so Pareto refuses it rather than compute something else.
//
// Tensors: every tensor of the file must be one the decoder reads. llama.cpp refuses a file with
// tensors its architecture does not load ("wrong number of tensors"), and loads some optional ones
// Pareto has no use for (llama's q/k/v and output-projection biases, FFN biases, a fused
// attn_qkv, qwen2's output.bias, LongRoPE factors, MoE experts): any such tensor is refused by
// name.
#include <cmath>
#include <set>
#include <string>

#include "model/decoder.h"

namespace pareto::model::detail {
namespace {

struct NeutralKey {
  const char* suffix;  // after "<arch>."
  double neutral;      // the one value accepted (the math Pareto computes)
  const char* what;    // what the key would switch on
};

const NeutralKey kNeutralKeys[] = {
    {"expert_count", 0, "a mixture of experts"},
    {"expert_used_count", 0, "a mixture of experts"},
    {"nextn_predict_layers", 0, "multi-token-prediction layers"},
    {"attention.sliding_window", 0, "sliding-window attention"},
    {"attn_logit_softcapping", 0, "attention logit soft-capping"},
    {"final_logit_softcapping", 0, "final logit soft-capping"},
    {"attention.scale", 0, "a custom attention scale (0: 1/sqrt(head dim))"},
    {"logit_scale", 1, "scaled logits"},
    {"embedding_scale", 1, "scaled embeddings"},
    {"residual_scale", 1, "scaled residuals"},
    {"attention.clamp_kqv", 0, "clamped Q/K/V"},
    {"attention.max_alibi_bias", 0, "ALiBi"},
    {"attention.temperature_scale", 0, "attention temperature tuning"},
};

// Keys whose mere presence asks for unsupported math.
const NeutralKey kPresenceKeys[] = {
    {"attention.sliding_window_pattern", 0, "sliding-window attention"},
    {"attention.key_length_swa", 0, "sliding-window attention layers"},
    {"attention.value_length_swa", 0, "sliding-window attention layers"},
    {"attention.temperature_length", 0, "attention temperature tuning"},
};

std::string value_string(const formats::Value& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.data)) return std::to_string(*u);
  if (const auto* i = std::get_if<int64_t>(&v.data)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v.data)) return str_cat(*d);
  if (const auto* b = std::get_if<bool>(&v.data)) return *b ? "true" : "false";
  if (const auto* s = std::get_if<std::string>(&v.data)) return "'" + *s + "'";
  return str_cat("an array of ", std::get<formats::Array>(v.data).items.size());
}

}  // namespace

Status refuse_unsupported_keys(const formats::ModelFile& file, const std::string& arch) {
  const formats::Metadata& md = file.metadata();
  const std::string p = arch + ".";
  const auto refuse = [&](const std::string& key, const formats::Value& v, const NeutralKey& k,
                          const std::string& supported) {
    return make_error("model: ", file.path(), ": metadata key '", key, "': found ", value_string(v),
                      ", which asks for ", k.what, ": not supported (supported: ", supported, ")");
  };
  for (const NeutralKey& k : kNeutralKeys) {
    const std::string key = p + k.suffix;
    const formats::Value* v = md.find(key);
    if (v == nullptr) continue;
    double x = std::nan("");
    if (const auto* u = std::get_if<uint64_t>(&v->data)) x = static_cast<double>(*u);
    if (const auto* i = std::get_if<int64_t>(&v->data)) x = static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&v->data)) x = *d;
    if (x != k.neutral) return refuse(key, *v, k, str_cat("absent or ", k.neutral));
  }
  for (const NeutralKey& k : kPresenceKeys) {
    const std::string key = p + k.suffix;
    if (const formats::Value* v = md.find(key)) return refuse(key, *v, k, "absent");
  }
  if (const formats::Value* v = md.find(p + "attention.causal")) {
    const auto* b = std::get_if<bool>(&v->data);
    if (b == nullptr || !*b) {
      return make_error("model: ", file.path(), ": metadata key '", p, "attention.causal': found ",
                        value_string(*v),
                        ": non-causal attention not supported (supported: absent or true)");
    }
  }
  return ok();
}

Status refuse_unused_tensors(const formats::ModelFile& file, const ModelConfig& c) {
  std::set<std::string> used = {"token_embd.weight", "output_norm.weight"};
  if (!c.tied_output) used.insert("output.weight");
  if (!c.rope_freq_factors.empty()) used.insert("rope_freqs.weight");
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".";
    for (const char* name : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                             "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight",
                             "ffn_up.weight", "ffn_down.weight"}) {
      used.insert(blk + name);
    }
    if (c.qkv_bias) {
      for (const char* name : {"attn_q.bias", "attn_k.bias", "attn_v.bias"})
        used.insert(blk + name);
    }
  }
  for (const formats::TensorInfo& t : file.tensors()) {
    if (used.count(t.name) == 0) {
      return make_error("model: ", file.path(), ": tensor '", t.name, "' is not used by Pareto's ",
                        c.arch, " decoder and would change its results (llama.cpp loads it or ",
                        "refuses the file); not supported");
    }
  }
  return ok();
}

}  // namespace pareto::model::detail
