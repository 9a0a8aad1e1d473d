// RoPE hyperparameters of llama-family GGUF files, read and derived exactly as llama.cpp (build
// de3ff81) reads them (llama_model::load_hparams, llama-model.cpp) and turns them into its context
// parameters (llama_context::llama_context, llama-context.cpp), for the llama and qwen2
// architectures. Compiled with -ffp-contract=off (src/CMakeLists.txt): libllama is built without
// fused multiply-adds, and the derived factors must round as its do.
//
// Decisions, key by key (`<arch>.` prefix omitted):
//   rope.freq_base                 honored (default 10000).
//   rope.scaling.type              honored: "none", "linear" (llama.cpp's default when the key is
//                                  absent), "yarn"; refused: "longrope" (needs rope_factors_long /
//                                  _short and a context-dependent choice) and any unknown name
//                                  (llama.cpp aborts on those).
//   rope.scaling.factor            honored: freq_scale = 1 / factor (factor 0: no scaling); ignored
//                                  by llama.cpp, and so here, with type "none". Negative or
//                                  non-finite: refused.
//   rope.scale_linear              honored: llama.cpp's legacy name, read when rope.scaling.factor
//                                  is absent.
//   rope.scaling.attn_factor       honored: multiplies the cos/sin magnitude with every type.
//   rope.scaling.original_context_length
//                                  honored: YaRN's n_ctx_orig (default: context_length); it only
//                                  acts with YaRN.
//   rope.scaling.yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow,
//   rope.scaling.yarn_log_multiplier
//                                  llama.cpp does not read these for llama or qwen2 (only for
//                                  deepseek2, mistral3, grok, glm-dsa): it uses ext_factor 1 with
//                                  YaRN (0 otherwise), its mscale correction, beta 32 / 1 and no
//                                  log multiplier. Accepted when they state exactly those values,
//                                  refused otherwise (honoring them would leave llama.cpp's
//                                  output, ignoring them would drop what the file says).
//   rope.scaling.alpha             not read for these architectures (XDRoPE): refused unless 0.
//   rope.scaling.finetuned         accepted: informational, no effect on the math.
//   rope.dimension_sections, rope.freq_base_swa, rope.dimension_count_swa
//                                  refused when present (M-RoPE; sliding-window layers).
//   rope_freqs.weight (tensor)     honored for llama (per-pair divisors of the angle, F32
//                                  [rope_dim / 2], as ggml_rope_ext's freq_factors); refused with
//                                  another type or shape. qwen2 does not load it (llama.cpp then
//                                  refuses the file: one tensor too many), so neither does Pareto
//                                  (refusals.cpp: unused tensors).
#include <cmath>
#include <string>

#include "model/decoder.h"

namespace pareto::model::detail {
namespace {

std::string key_error_prefix(const formats::ModelFile& file, const std::string& key) {
  return str_cat("model: ", file.path(), ": metadata key '", key, "': ");
}

// llama_context's get_mscale(scale, mscale = 1): YaRN's magnitude for a context scaled by `scale`.
float yarn_mscale(float scale) {
  return scale <= 1.0f ? 1.0f : 0.1f * std::log(scale) + 1.0f;
}

// A yarn_* key llama.cpp does not read for this architecture: fine when it states the value
// llama.cpp uses anyway.
Status expect_unread_value(const formats::ModelFile& file, const std::string& arch,
                           const std::string& key, float used) {
  if (!file.metadata().contains(key)) return ok();
  PARETO_TRY(const double v, file.metadata().get_float(key));
  if (static_cast<float>(v) == used) return ok();
  return make_error(key_error_prefix(file, key), "found ", v, ", but llama.cpp (de3ff81) does not ",
                    "read this key for the ", arch, " architecture and computes with ", used,
                    "; not supported (supported: absent or ", used, ")");
}

}  // namespace

Status read_rope_config(const formats::ModelFile& file, const std::string& arch, ModelConfig& c) {
  const formats::Metadata& md = file.metadata();
  const std::string p = arch + ".";
  if (md.contains(p + "rope.freq_base")) {
    PARETO_TRY(const double base, md.get_float(p + "rope.freq_base"));
    if (!(base > 0) || !std::isfinite(base)) {
      return make_error(key_error_prefix(file, p + "rope.freq_base"),
                        "expected a positive finite value, found ", base);
    }
    c.rope_base = static_cast<float>(base);
  }

  // load_hparams: the type, default "linear"; the factor, from rope.scaling.factor or the legacy
  // rope.scale_linear; freq_scale_train = factor == 0 ? 1 : 1 / factor.
  std::string type = "linear";
  if (md.contains(p + "rope.scaling.type")) {
    PARETO_TRY(type, md.get_string(p + "rope.scaling.type"));
  }
  if (type == "none") {
    c.rope_scaling = RopeScaling::kNone;
  } else if (type == "linear") {
    c.rope_scaling = RopeScaling::kLinear;
  } else if (type == "yarn") {
    c.rope_scaling = RopeScaling::kYarn;
  } else {
    return make_error(key_error_prefix(file, p + "rope.scaling.type"), "found '", type,
                      "', not supported (supported: none, linear, yarn)");
  }
  const std::string factor_key =
      md.contains(p + "rope.scaling.factor") ? p + "rope.scaling.factor" : p + "rope.scale_linear";
  float factor = 0.0f;
  if (md.contains(factor_key)) {
    PARETO_TRY(const double f, md.get_float(factor_key));
    if (!(f >= 0) || !std::isfinite(f)) {
      return make_error(key_error_prefix(file, factor_key),
                        "expected a finite value >= 0 (0: no scaling), found ", f);
    }
    factor = static_cast<float>(f);
  }
  float attn_factor_key = 1.0f;  // hparams.rope_attn_factor
  if (md.contains(p + "rope.scaling.attn_factor")) {
    PARETO_TRY(const double a, md.get_float(p + "rope.scaling.attn_factor"));
    if (!std::isfinite(a)) {
      return make_error(key_error_prefix(file, p + "rope.scaling.attn_factor"),
                        "expected a finite value, found ", a);
    }
    attn_factor_key = static_cast<float>(a);
  }
  c.rope_n_ctx_orig = c.context_length;
  if (md.contains(p + "rope.scaling.original_context_length")) {
    PARETO_TRY(const uint64_t n, md.get_uint(p + "rope.scaling.original_context_length"));
    if (n > (1u << 30)) {
      return make_error(key_error_prefix(file, p + "rope.scaling.original_context_length"),
                        "expected at most 2^30, found ", n);
    }
    if (n != 0) c.rope_n_ctx_orig = static_cast<int>(n);  // 0: cparams fall back to n_ctx_train
  }

  // llama_context: freq_scale (1 with type none), ext_factor (1 with YaRN), then the magnitude:
  // with YaRN, get_mscale(factor) / (1 + 0.1 ln factor) (the kernel multiplies the second back),
  // always times rope.scaling.attn_factor.
  c.rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
  if (c.rope_scaling == RopeScaling::kNone) c.rope_freq_scale = 1.0f;
  c.rope_ext_factor = c.rope_scaling == RopeScaling::kYarn ? 1.0f : 0.0f;
  c.rope_attn_factor = 1.0f;
  c.rope_beta_fast = 32.0f;
  c.rope_beta_slow = 1.0f;
  float applied_mscale = 1.0f;  // what the yarn_attn_factor key would have to say
  if (c.rope_ext_factor != 0.0f) {
    const float f = 1.0f / c.rope_freq_scale;
    applied_mscale = yarn_mscale(f);
    c.rope_attn_factor = applied_mscale;
    c.rope_attn_factor *= 1.0f / (1.0f + 0.1f * std::log(f));
  }
  c.rope_attn_factor *= attn_factor_key;

  const std::string y = p + "rope.scaling.yarn_";
  PARETO_RETURN_IF_ERROR(expect_unread_value(file, arch, y + "ext_factor", c.rope_ext_factor));
  PARETO_RETURN_IF_ERROR(expect_unread_value(file, arch, y + "attn_factor", applied_mscale));
  PARETO_RETURN_IF_ERROR(expect_unread_value(file, arch, y + "beta_fast", c.rope_beta_fast));
  PARETO_RETURN_IF_ERROR(expect_unread_value(file, arch, y + "beta_slow", c.rope_beta_slow));
  PARETO_RETURN_IF_ERROR(expect_unread_value(file, arch, y + "log_multiplier", 0.0f));
  PARETO_RETURN_IF_ERROR(expect_unread_value(file, arch, p + "rope.scaling.alpha", 0.0f));
  for (const char* swa :
       {"rope.dimension_sections", "rope.freq_base_swa", "rope.dimension_count_swa"}) {
    if (md.contains(p + swa)) {
      return make_error(key_error_prefix(file, p + swa), "present, not supported (M-RoPE and ",
                        "sliding-window layers are not implemented)");
    }
  }

  // rope_freqs.weight: llama only (llm_build_llama's get_rope_factors), F32 [rope_dim / 2].
  c.rope_freq_factors.clear();
  const formats::TensorInfo* freqs = file.find_tensor("rope_freqs.weight");
  if (freqs != nullptr && arch == "llama") {
    const std::string prefix = str_cat("model: ", file.path(), ": tensor 'rope_freqs.weight': ");
    const int64_t n = c.rope_dim / 2;
    if (freqs->shape != std::vector<int64_t>{n}) {
      std::string found = "[";
      for (size_t i = 0; i < freqs->shape.size(); ++i) {
        found += (i ? ", " : "") + std::to_string(freqs->shape[i]);
      }
      return make_error(prefix, "shape expected [", n, "] (rope dimension count / 2), found ",
                        found, "]");
    }
    if (freqs->type != TensorType::F32) {
      return make_error(prefix, "type ", type_name(freqs->type), " not supported (expected F32)");
    }
    if (freqs->data == nullptr) return make_error(prefix, "no data");
    const auto* f = reinterpret_cast<const float*>(freqs->data);
    c.rope_freq_factors.assign(f, f + n);
    for (int64_t i = 0; i < n; ++i) {
      if (!(c.rope_freq_factors[static_cast<size_t>(i)] != 0.0f) ||
          !std::isfinite(c.rope_freq_factors[static_cast<size_t>(i)])) {
        return make_error(prefix, "element ", i, ": expected a finite non-zero divisor, found ",
                          c.rope_freq_factors[static_cast<size_t>(i)]);
      }
    }
  }
  return ok();
}

kernels::RopeParams rope_params(const ModelConfig& c, kernels::RopeMode mode) {
  kernels::RopeParams r;
  r.rope_dim = c.rope_dim;
  r.mode = mode;
  r.base = c.rope_base;
  r.freq_scale = c.rope_freq_scale;
  r.ext_factor = c.rope_ext_factor;
  r.attn_factor = c.rope_attn_factor;
  r.beta_fast = c.rope_beta_fast;
  r.beta_slow = c.rope_beta_slow;
  r.n_ctx_orig = c.rope_n_ctx_orig;
  r.freq_factors = c.rope_freq_factors.empty() ? nullptr : c.rope_freq_factors.data();
  return r;
}

}  // namespace pareto::model::detail
