// TokenizerImpl: the vocabulary plus the algorithm state behind Tokenizer. Internal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/encoders.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/vocab.h"

namespace pareto::tokenizer {

class TokenizerImpl {
 public:
  static Result<TokenizerImpl> create(const formats::Metadata& metadata);

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  std::string token_to_piece(int32_t id, bool special) const;
  std::string decode(const int32_t* ids, size_t n) const;

  const Vocab& vocab() const { return vocab_; }

 private:
  // A fragment of the input: a special token, or raw text [offset, offset + length).
  struct Fragment {
    int32_t token = -1;  // -1: raw text
    size_t offset = 0;
    size_t length = 0;
  };
  // llama.cpp's tokenizer_st_partition: special tokens (longest first) are cut out of the raw
  // text; control and unknown ones only when parse_special.
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void encode_raw(std::string_view text, bool prefix_space, std::vector<int32_t>& out) const;
  std::string render_piece(int32_t id) const;  // llama.cpp's token_to_piece with special=true

  Vocab vocab_;
  std::optional<BpeMerges> merges_;       // BPE only
  std::optional<PreTokenizer> pre_;       // BPE only
  std::vector<std::string> piece_cache_;  // [n_vocab] render_piece
};

}  // namespace pareto::tokenizer
