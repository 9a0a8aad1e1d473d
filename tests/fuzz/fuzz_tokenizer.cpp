// libFuzzer target: tokenizes arbitrary bytes (invalid UTF-8 included) with a real SentencePiece
// vocabulary and two byte-level BPE ones, and checks the invariants that must always hold:
// ids are in range, the pieces give the text back (exactly for byte-level BPE, up to the SPM
// space prefix and U+2581 <-> ' ' for SPM), and streaming never emits broken UTF-8.
//
// Vocabularies come from $PARETO_SHARED (else the PARETO_DEFAULT_SHARED compile definition):
// the first input byte picks one, the rest is the text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/model_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#ifndef PARETO_DEFAULT_SHARED
#define PARETO_DEFAULT_SHARED "../shared"
#endif

namespace {

using pareto::tokenizer::IncrementalDecoder;
using pareto::tokenizer::Tokenizer;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_tokenizer: invariant broken: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

std::unique_ptr<Tokenizer> load(const std::string& rel) {
  const char* env = std::getenv("PARETO_SHARED");
  const std::string dir = env && *env ? env : PARETO_DEFAULT_SHARED;
  auto file = pareto::formats::read_gguf(dir + "/" + rel);
  if (!file) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", file.error().message.c_str());
    std::abort();
  }
  auto tok = Tokenizer::from_metadata(file->metadata());
  if (!tok) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", tok.error().message.c_str());
    std::abort();
  }
  return std::make_unique<Tokenizer>(std::move(*tok));
}

struct Vocabularies {
  std::unique_ptr<Tokenizer> spm = load("models/stories260K/stories260K.gguf");
  std::unique_ptr<Tokenizer> gpt2 = load("vocab/ggml-vocab-gpt-2.gguf");
  std::unique_ptr<Tokenizer> llama3 = load("vocab/ggml-vocab-llama-bpe.gguf");
};

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// The text as llama.cpp's byte-level BPE sees it: each undecodable byte becomes U+FFFD.
std::string canonical_utf8(std::string_view text) {
  std::string out;
  for (const uint32_t cpt : pareto::tokenizer::decode_utf8_lenient(text)) {
    pareto::tokenizer::append_utf8(out, cpt);
  }
  return out;
}

void check_ids_and_streaming(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string plain;
  for (const int32_t id : ids) {
    check(id >= 0 && id < tok.n_vocab(), "token id out of range");
    plain += tok.token_to_piece(id);
  }
  IncrementalDecoder dec(tok, /*at_text_start=*/false);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string out = dec.push(id);
    check(pareto::tokenizer::is_valid_utf8(out), "push emitted invalid UTF-8");
    streamed += out;
  }
  const std::string tail = dec.flush();
  check(pareto::tokenizer::is_valid_utf8(tail), "flush emitted invalid UTF-8");
  streamed += tail;
  if (pareto::tokenizer::is_valid_utf8(plain)) check(streamed == plain, "streaming lost text");
  (void)tok.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Vocabularies vocabs;  // loaded once per process
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const uint8_t pick = data[0] % 3;
  const Tokenizer& tok = pick == 0 ? *vocabs.spm : pick == 1 ? *vocabs.gpt2 : *vocabs.llama3;

  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/false, /*parse_special=*/false);
  check_ids_and_streaming(tok, ids);
  std::string pieces;
  for (const int32_t id : ids) pieces += tok.token_to_piece(id, /*special=*/true);

  if (tok.kind() == "spm") {
    // SentencePiece escapes ' ' as U+2581 and adds one leading space; every byte survives
    // (byte fallback), but a literal U+2581 in the input comes back as a space.
    const std::string sp = "\xe2\x96\x81";
    std::string expected;
    if (!text.empty()) expected.append(" ").append(text);
    check(replace_all(pieces, sp, " ") == replace_all(expected, sp, " "),
          "SPM pieces do not reproduce the text");
  } else {
    check(pieces == canonical_utf8(text), "BPE pieces do not reproduce the text");
  }

  // Special-token parsing and BOS must not break anything either.
  const std::vector<int32_t> special = tok.encode(text, /*add_bos=*/true, /*parse_special=*/true);
  check_ids_and_streaming(tok, special);

  // Arbitrary id sequences decode without crashing.
  std::vector<int32_t> random_ids;
  for (size_t i = 1; i + 1 < size; i += 2) {
    random_ids.push_back(static_cast<int32_t>((data[i] << 8 | data[i + 1]) % tok.n_vocab()));
  }
  check_ids_and_streaming(tok, random_ids);
  return 0;
}
