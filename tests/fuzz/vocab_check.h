// Shared by the format targets: a vocabulary read from untrusted bytes (a GGUF file's
// tokenizer.ggml.* keys, or a llama2.c tokenizer.bin) is what the engine builds its tokenizer
// from, so the readers' fuzz targets build one too and run it: hostile token texts, scores, types,
// merges and special ids must fail with an error or tokenize, never crash.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "formats/model_file.h"
#include "tokenizer/tokenizer.h"

inline void fuzz_vocabulary(const pareto::formats::Metadata& metadata) {
  if (!metadata.contains("tokenizer.ggml.model")) return;
  auto tok = pareto::tokenizer::Tokenizer::from_metadata(metadata);
  if (!tok) return;
  // Plain text, spaces, a byte-fallback character and special-token texts.
  constexpr std::string_view kText = "Hi  there\n<s>x</s><|endoftext|> \xe2\x96\x81 12\xc3\xa9";
  const std::vector<int32_t> ids = tok->encode(kText, /*add_bos=*/true, /*parse_special=*/true);
  (void)tok->decode(ids);
  pareto::tokenizer::IncrementalDecoder dec(*tok);
  for (const int32_t id : ids) (void)dec.push(id);
  (void)dec.flush();
  // Every id's piece, special or not (bounded: the vocabulary came from the input's bytes).
  for (int32_t id = 0; id < tok->n_vocab(); ++id) (void)tok->token_to_piece(id, true);
}
