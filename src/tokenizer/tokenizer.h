// Tokenizer: text <-> token ids, built from a model's tokenizer.ggml.* metadata. Two algorithms
// behind one class: SentencePiece-BPE (tokenizer.ggml.model = "llama") and byte-level BPE ("gpt2",
// with the pre-tokenizer regex chosen by tokenizer.ggml.pre). Matches llama.cpp's llama-vocab.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "formats/model_file.h"

namespace pareto::tokenizer {

class TokenizerImpl;  // the algorithm (spm or bpe); defined in the .cpp files

class Tokenizer {
 public:
  // Errors name the metadata source and the key (missing tokenizer.ggml.tokens, unknown
  // tokenizer.ggml.model or tokenizer.ggml.pre, mismatched array lengths, ...).
  static Result<Tokenizer> from_metadata(const formats::Metadata& metadata);

  // add_bos: prepend BOS (callers pass add_bos_default() unless told otherwise).
  // parse_special: text like "<s>" or "<|im_start|>" maps to the special token instead of text.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const;

  // The bytes one token contributes to the output ("▁" -> ' ', "<0x0A>" -> '\n', byte-level BPE
  // unicode -> bytes). Control tokens give "".  May be a partial UTF-8 sequence.
  std::string token_to_piece(int32_t id) const;
  // Concatenated pieces, as llama.cpp's detokenize (removes the leading space the SPM space
  // prefix added when the first token starts with one).
  std::string decode(std::span<const int32_t> ids) const;

  int32_t n_vocab() const;
  int32_t bos_id() const;  // -1 if none
  int32_t eos_id() const;  // -1 if none
  bool add_bos_default() const;
  bool is_end_of_generation(int32_t id) const;  // eos, eot, ...
  std::string_view kind() const;                // "spm" or "bpe"

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  std::unique_ptr<TokenizerImpl> impl_;
};

// Streams text token by token without ever emitting a broken UTF-8 sequence: bytes of an
// incomplete character wait for the next token.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  std::string push(int32_t id);  // complete UTF-8 text made available by this token
  std::string flush();           // whatever is pending (invalid bytes replaced by U+FFFD)

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace pareto::tokenizer
