#include "tokenizer/vocab.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <initializer_list>

namespace pareto::tokenizer {
namespace {

// GGUF token types (tokenizer.ggml.token_type), as llama.cpp's llama_token_type.
uint32_t attr_from_token_type(int64_t type) {
  switch (type) {
    case 1:
      return kAttrNormal;
    case 2:
      return kAttrUnknown;
    case 3:
      return kAttrControl;
    case 4:
      return kAttrUserDefined;
    case 5:
      return kAttrUnused;
    case 6:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

bool is_one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

// llama.cpp recognises some special tokens by their text when the metadata does not name them,
// and forces them to be control tokens (which changes how raw text containing them tokenizes).
struct NamedSpecial {
  int32_t* id;
  std::initializer_list<std::string_view> names;
};

void detect_specials_by_text(Vocab& v, int32_t& fim_pad, int32_t& fim_rep, int32_t& fim_sep) {
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1;
  const std::array<NamedSpecial, 8> table = {{
      {&v.eot_id,
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "[EOT]",
        "<\xef\xbd\x9c"
        "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
        "<end_of_utterance>"}},
      {&v.eom_id, {"<|eom_id|>"}},
      {&fim_pre,
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<\xef\xbd\x9c"
        "fim\xe2\x96\x81"
        "begin\xef\xbd\x9c>",
        "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
      {&fim_suf,
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<\xef\xbd\x9c"
        "fim\xe2\x96\x81hole\xef\xbd\x9c>",
        "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
      {&fim_mid,
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<\xef\xbd\x9c"
        "fim\xe2\x96\x81"
        "end\xef\xbd\x9c>",
        "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
      {&fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {&fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {&fim_sep, {"<|file_sep|>"}},
  }};
  // llama.cpp takes whichever listed text its hash map yields first; we take the first name of the
  // list that is present, so e.g. Llama 3's EOT is <|eot_id|> rather than <|end_of_text|>.
  for (const NamedSpecial& special : table) {
    if (*special.id != -1) continue;
    for (const std::string_view name : special.names) {
      const int32_t id = v.find(name);
      if (id < 0) continue;
      *special.id = id;
      v.attr[id] |= kAttrControl;
      break;
    }
  }
}

// Tokens that end generation, by text (llama.cpp's list), plus the named ones.
void build_end_of_generation(Vocab& v, int32_t fim_pad, int32_t fim_rep, int32_t fim_sep) {
  v.end_of_generation.assign(v.text.size(), false);
  for (int32_t id = 0; id < v.n_vocab(); ++id) {
    if (is_one_of(v.text[id], {"<|eot_id|>",
                               "<|im_end|>",
                               "<|end|>",
                               "<|return|>",
                               "<|call|>",
                               "<|flush|>",
                               "<|calls|>",
                               "<end_of_turn>",
                               "<|endoftext|>",
                               "</s>",
                               "<|eom_id|>",
                               "<EOT>",
                               "_<EOT>",
                               "[EOT]",
                               "[EOS]",
                               "<|end_of_text|>",
                               "<end_of_utterance>",
                               "<eos>",
                               "<turn|>",
                               "<|tool_response>",
                               "<\xef\xbd\x9c"
                               "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                               "[e~["})) {
      v.end_of_generation[id] = true;
      v.attr[id] |= kAttrControl;
    }
  }
  for (const int32_t id : {v.eos_id, v.eot_id, v.eom_id, fim_pad, fim_rep, fim_sep}) {
    if (id >= 0) v.end_of_generation[id] = true;
  }
}

Status read_special_id(const formats::Metadata& md, const char* key, int32_t n_vocab, int32_t& id) {
  if (id >= n_vocab) id = -1;  // a default out of range is disabled
  if (!md.contains(key)) return ok();
  PARETO_TRY(const uint64_t value, md.get_uint(key));
  if (value < static_cast<uint64_t>(n_vocab)) id = static_cast<int32_t>(value);
  // Out of range (e.g. 4294967295 for "none"): llama.cpp keeps the default.
  return ok();
}

Status read_bool_if_present(const formats::Metadata& md, const char* key, bool& flag) {
  if (!md.contains(key)) return ok();
  PARETO_TRY(flag, md.get_bool(key));
  return ok();
}

Status read_tokens(const formats::Metadata& md, Vocab& v) {
  const std::string src = md.source().empty() ? "tokenizer" : "tokenizer: " + md.source();
  if (!md.contains("tokenizer.ggml.tokens")) {
    return make_error(src, ": missing tokenizer.ggml.tokens");
  }
  PARETO_TRY(v.text, md.get_string_array("tokenizer.ggml.tokens"));
  const size_t n = v.text.size();
  if (n == 0 || n > static_cast<size_t>(INT32_MAX)) {
    return make_error(src, ": tokenizer.ggml.tokens: expected 1..2^31-1 tokens, found ", n);
  }
  v.score.assign(n, 0.0f);
  if (md.contains("tokenizer.ggml.scores")) {
    auto scores = md.get_float_array("tokenizer.ggml.scores");
    if (!scores) {  // llama.cpp also accepts int32 scores
      PARETO_TRY(auto iscores, md.get_int_array("tokenizer.ggml.scores"));
      scores = std::vector<float>(iscores.begin(), iscores.end());
    }
    if (scores->size() < n) {
      return make_error(src, ": tokenizer.ggml.scores: expected ", n, " entries, found ",
                        scores->size());
    }
    std::copy_n(scores->begin(), n, v.score.begin());
  }
  v.attr.assign(n, kAttrNormal);
  if (md.contains("tokenizer.ggml.token_type")) {
    PARETO_TRY(const auto types, md.get_int_array("tokenizer.ggml.token_type"));
    if (types.size() < n) {
      return make_error(src, ": tokenizer.ggml.token_type: expected ", n, " entries, found ",
                        types.size());
    }
    for (size_t i = 0; i < n; ++i) v.attr[i] = attr_from_token_type(types[i]);
  }
  v.text_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (v.text[i].empty()) v.text[i] = "[EMPTY_" + std::to_string(i) + "]";
    const auto [it, inserted] = v.text_to_id.emplace(v.text[i], static_cast<int32_t>(i));
    if (!inserted) {
      return make_error(src, ": tokenizer.ggml.tokens: duplicate token '", v.text[i], "' at ids ",
                        it->second, " and ", i);
    }
  }
  return ok();
}

// llama.cpp marks the special tokens of Phi-3 models (by general.name) as right-stripping.
void apply_model_specific_attrs(const formats::Metadata& md, Vocab& v) {
  std::string name;
  if (md.contains("general.name")) name = md.get_string("general.name").value_or("");
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.find("phi-3") == std::string::npos && name.find("phi3") == std::string::npos) return;
  for (const int32_t id : v.special_tokens) v.attr[id] |= kAttrRstrip;
  const auto set_rstrip = [&](std::string_view token, bool on) {
    const int32_t id = v.find(token);
    if (id < 0) return;
    v.attr[id] = on ? (v.attr[id] | kAttrRstrip) : (v.attr[id] & ~uint32_t{kAttrRstrip});
  };
  set_rstrip("</s>", true);
  for (const char* token : {"<unk>", "<s>", "<|endoftext|>"}) set_rstrip(token, false);
}

}  // namespace

int32_t Vocab::spm_byte_token(uint8_t byte) const {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const char name[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
  int32_t id = find(std::string_view(name, 6));
  if (id < 0) id = find(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  return id >= 0 ? id : unk_id;
}

Result<Vocab> load_vocab(const formats::Metadata& md, const PreTypeFlagsFn& defaults_for_pre) {
  const std::string src = md.source().empty() ? "tokenizer" : "tokenizer: " + md.source();
  Vocab v;
  if (!md.contains("tokenizer.ggml.model")) {
    return make_error(src, ": missing tokenizer.ggml.model");
  }
  PARETO_TRY(v.model_name, md.get_string("tokenizer.ggml.model"));
  if (md.contains("tokenizer.ggml.pre")) {
    PARETO_TRY(v.pre_name, md.get_string("tokenizer.ggml.pre"));
  }
  if (v.model_name == "llama") {
    v.kind = VocabKind::kSpm;
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    v.add_space_prefix = true;
    v.add_bos = true;
  } else if (v.model_name == "gpt2") {
    v.kind = VocabKind::kBpe;
    v.bos_id = 11;
    v.eos_id = 11;
    PARETO_TRY(const PreTypeFlags flags, defaults_for_pre(v.pre_name));
    v.add_bos = flags.add_bos;
    v.clean_spaces = flags.clean_spaces;
    v.ignore_merges = flags.ignore_merges;
    if (!flags.has_bos) v.bos_id = -1;
  } else {
    return make_error(src, ": tokenizer.ggml.model: unknown tokenizer '", v.model_name,
                      "' (supported: llama, gpt2)");
  }
  PARETO_RETURN_IF_ERROR(
      read_bool_if_present(md, "tokenizer.ggml.add_space_prefix", v.add_space_prefix));
  PARETO_RETURN_IF_ERROR(read_tokens(md, v));

  const int32_t n = v.n_vocab();
  int32_t fim_pad = -1, fim_rep = -1, fim_sep = -1;
  const std::array<std::pair<const char*, int32_t*>, 8> ids = {{
      {"tokenizer.ggml.bos_token_id", &v.bos_id},
      {"tokenizer.ggml.eos_token_id", &v.eos_id},
      {"tokenizer.ggml.eot_token_id", &v.eot_id},
      {"tokenizer.ggml.eom_token_id", &v.eom_id},
      {"tokenizer.ggml.unknown_token_id", &v.unk_id},
      {"tokenizer.ggml.padding_token_id", &v.pad_id},
      {"tokenizer.ggml.fim_pad_token_id", &fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &fim_rep},
  }};
  for (const auto& [key, id] : ids) PARETO_RETURN_IF_ERROR(read_special_id(md, key, n, *id));
  PARETO_RETURN_IF_ERROR(read_special_id(md, "tokenizer.ggml.fim_sep_token_id", n, fim_sep));

  PARETO_RETURN_IF_ERROR(read_bool_if_present(md, "tokenizer.ggml.add_bos_token", v.add_bos));
  PARETO_RETURN_IF_ERROR(read_bool_if_present(md, "tokenizer.ggml.add_eos_token", v.add_eos));
  if (v.add_bos && v.bos_id < 0) {
    return make_error(src,
                      ": tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id"
                      " is not set");
  }
  if (v.add_eos && v.eos_id < 0) {
    return make_error(src,
                      ": tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id"
                      " is not set");
  }

  detect_specials_by_text(v, fim_pad, fim_rep, fim_sep);
  build_end_of_generation(v, fim_pad, fim_rep, fim_sep);

  for (int32_t id = 0; id < n; ++id) {
    if (v.has(kAttrControl | kAttrUserDefined | kAttrUnknown, id)) v.special_tokens.push_back(id);
  }
  std::stable_sort(v.special_tokens.begin(), v.special_tokens.end(),
                   [&](int32_t a, int32_t b) { return v.text[a].size() > v.text[b].size(); });
  apply_model_specific_attrs(md, v);
  return v;
}

}  // namespace pareto::tokenizer
