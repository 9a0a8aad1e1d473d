// Vocab: the token table and the flags read from tokenizer.ggml.* metadata, with llama.cpp's
// defaults and its load-time fix-ups (token attributes, end-of-generation set, special-token
// list). Internal to the tokenizer module.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "formats/model_file.h"

namespace pareto::tokenizer {

// Token attributes, as llama.cpp's llama_token_attr bits.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
};

enum class VocabKind { kSpm, kBpe };

// Hash that lets unordered_map<std::string, ...> be probed with a string_view (no allocation).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  VocabKind kind = VocabKind::kSpm;
  std::string model_name;  // tokenizer.ggml.model
  std::string pre_name;    // tokenizer.ggml.pre ("" when absent)

  std::vector<std::string> text;  // [n_vocab] token strings as stored
  std::vector<float> score;       // [n_vocab]
  std::vector<uint32_t> attr;     // [n_vocab] TokenAttr bits
  TokenIdMap text_to_id;

  int32_t bos_id = -1, eos_id = -1, eot_id = -1, eom_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;   // llama.cpp's clean_up_tokenization_spaces in detokenize
  bool ignore_merges = false;  // BPE: a pre-token already in the vocab is emitted whole

  // Control, user-defined and unknown tokens, longest text first: the order in which llama.cpp
  // splits them out of raw text before running the tokenizer.
  std::vector<int32_t> special_tokens;
  std::vector<bool> end_of_generation;  // [n_vocab]

  int32_t n_vocab() const { return static_cast<int32_t>(text.size()); }
  int32_t find(std::string_view s) const {
    const auto it = text_to_id.find(s);
    return it == text_to_id.end() ? -1 : it->second;
  }
  bool has(uint32_t id_attr_bits, int32_t id) const { return (attr[id] & id_attr_bits) != 0; }

  // SPM byte fallback: the <0xXX> token, else the one-byte token, else unk (llama.cpp throws).
  int32_t spm_byte_token(uint8_t byte) const;
};

// Reads the table and flags. `defaults_for_pre` reports, for a BPE vocabulary, the per-pre-type
// flags llama.cpp sets before reading the explicit keys (it fails for an unknown pre-type).
struct PreTypeFlags {
  bool add_bos = false;
  bool clean_spaces = true;
  bool ignore_merges = false;
  bool has_bos = true;  // false: llama.cpp clears the default BOS id (chatglm)
};
using PreTypeFlagsFn = std::function<Result<PreTypeFlags>(const std::string& pre_name)>;
Result<Vocab> load_vocab(const formats::Metadata& metadata, const PreTypeFlagsFn& defaults_for_pre);

}  // namespace pareto::tokenizer
