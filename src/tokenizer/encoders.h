// The two merge algorithms, each on one piece of raw text (special tokens already split out):
// SentencePiece-BPE by token score (llama.cpp's llm_tokenizer_spm) and byte-level BPE by merge
// rank (llm_tokenizer_bpe). Internal to the tokenizer module.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "formats/model_file.h"
#include "tokenizer/vocab.h"

namespace pareto::tokenizer {

// `text` has spaces already escaped to U+2581 (and the space prefix added when due). Appends ids.
void spm_tokenize(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

// Merge ranks from tokenizer.ggml.merges ("left right", rank = position; the first of duplicate
// pairs wins, as in llama.cpp).
class BpeMerges {
 public:
  static Result<BpeMerges> load(const formats::Metadata& metadata, const Vocab& vocab);

  // Rank of merging `left` and `right` (token ids, -1 when the text is not a token), or -1.
  int32_t rank(int32_t left_id, int32_t right_id, std::string_view left,
               std::string_view right) const;
  size_t size() const { return n_merges_; }

 private:
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  std::unordered_map<uint64_t, int32_t> rank_by_ids_;
  TokenIdMap rank_by_text_;  // "left right", only for merges whose halves are not both tokens
  size_t n_merges_ = 0;
};

// One pre-tokenized, byte-encoded word. Appends ids.
void bpe_tokenize_word(const Vocab& vocab, const BpeMerges& merges, std::string_view word,
                       std::vector<int32_t>& out);

}  // namespace pareto::tokenizer
