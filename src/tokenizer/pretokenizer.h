// Byte-level BPE pre-tokenizer: splits text into words with the regexes llama.cpp uses for the
// vocabulary's tokenizer.ggml.pre, run through PCRE2 (UTF + UCP, JIT when available), then maps
// each word's bytes through GPT-2's byte-to-unicode table.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tokenizer/vocab.h"

namespace pareto::tokenizer {

class PreTokenizer {
 public:
  // The flags llama.cpp sets for this pre-type; errors name the type and list the supported ones.
  static Result<PreTypeFlags> flags_for(const std::string& pre_name);
  static Result<PreTokenizer> create(const std::string& pre_name);
  static std::string supported_names();  // comma-separated, for messages

  // Words of `text`, byte-encoded (GPT-2 bytes_to_unicode), in order. Invalid UTF-8 is decoded as
  // llama.cpp decodes it (each undecodable byte becomes U+FFFD) before splitting.
  std::vector<std::string> split(std::string_view text) const;

  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

 private:
  struct Regexes;  // compiled PCRE2 patterns
  explicit PreTokenizer(std::unique_ptr<Regexes> regexes);
  std::unique_ptr<Regexes> regexes_;
};

}  // namespace pareto::tokenizer
