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

  // add_bos: prepend BOS (callers pass add_bos_default() unless told otherwise). EOS is never
  // appended (add_eos_default() reports the model's wish). Invalid UTF-8 never fails: SPM falls
  // back to byte tokens; byte-level BPE, like llama.cpp, sees each undecodable byte as U+FFFD.
  // parse_special: text like "<s>" or "<|im_start|>" maps to the special token instead of text.
  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special = false) const;

  // The bytes one token contributes to the output ("▁" -> ' ', "<0x0A>" -> '\n', byte-level BPE
  // unicode -> bytes). Control tokens give "".  May be a partial UTF-8 sequence.
  // special=true renders control/unknown tokens as their text (llama.cpp's `special` flag).
  std::string token_to_piece(int32_t id, bool special = false) const;
  // Concatenated pieces, as llama.cpp's detokenize (remove_special = unparse_special = false):
  // with the SPM space prefix on, the first token loses one leading space (a leading BOS counts
  // as that first token, so decode(encode(s, true)) == " " + s there); vocabularies with
  // clean_up_tokenization_spaces (gpt-2, llama-bpe, starcoder, ...) drop the space in " ?",
  // " !", " .", " ,", " 's", ... Invalid ids give "".
  std::string decode(std::span<const int32_t> ids) const;

  int32_t n_vocab() const;
  int32_t bos_id() const;  // -1 if none
  int32_t eos_id() const;  // -1 if none
  bool add_bos_default() const;
  bool is_end_of_generation(int32_t id) const;  // eos, eot, ...
  std::string_view kind() const;                // "spm" or "bpe"

  int32_t eot_id() const;  // -1 if none
  int32_t unk_id() const;  // -1 if none
  bool add_eos_default() const;
  bool add_space_prefix() const;      // SPM: a space is prepended to the text before encoding
  std::string_view pre_type() const;  // tokenizer.ggml.pre ("" when absent)
  int32_t token_id(std::string_view text) const;    // exact token text -> id, -1 if none
  const std::string& token_text(int32_t id) const;  // as stored in the vocabulary

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
  // at_text_start: the first token starts the text, so (as in decode) the space the SPM space
  // prefix added is dropped from it. Pass false to continue text already shown (generation).
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool at_text_start = true)
      : tokenizer_(&tokenizer), first_(at_text_start) {}
  std::string push(int32_t id);  // complete UTF-8 text made available by this token
  std::string flush();           // whatever is pending (invalid bytes replaced by U+FFFD)

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace pareto::tokenizer
