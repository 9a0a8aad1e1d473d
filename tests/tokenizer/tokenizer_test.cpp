// Tokenizer behaviour beyond the llama.cpp suites: metadata errors and defaults, merge order on
// small synthetic vocabularies, special tokens, pieces, and UTF-8-safe streaming.
#include "tokenizer/tokenizer.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/model_file.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

namespace pareto::tokenizer {
namespace {

using formats::Metadata;
using formats::Value;

Tokenizer load_shared(const std::string& rel) {
  auto file = formats::read_gguf(test::shared_path(rel));
  if (!file) ADD_FAILURE() << file.error().message;
  if (!file) std::abort();
  auto tok = Tokenizer::from_metadata(file->metadata());
  if (!tok) ADD_FAILURE() << tok.error().message;
  if (!tok) std::abort();
  return std::move(*tok);
}

std::vector<std::string> byte_tokens() {
  std::vector<std::string> out;
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    out.emplace_back(name);
  }
  return out;
}

// SPM vocabulary: <unk> <s> </s>, 256 byte tokens, then `pieces` with `scores` (all normal).
Metadata spm_metadata(const std::vector<std::string>& pieces, const std::vector<float>& scores) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> all_scores = {0, 0, 0};
  for (const std::string& b : byte_tokens()) {
    tokens.push_back(b);
    types.push_back(6);
    all_scores.push_back(0);
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    tokens.push_back(pieces[i]);
    types.push_back(1);
    all_scores.push_back(scores[i]);
  }
  Metadata md("synthetic-spm");
  md.set("tokenizer.ggml.model", Value::str("llama"));
  md.set("tokenizer.ggml.tokens", Value::str_array(tokens));
  md.set("tokenizer.ggml.scores", Value::f32_array(all_scores));
  md.set("tokenizer.ggml.token_type", Value::i32_array(types));
  return md;
}
constexpr int32_t kFirstSpmPiece = 3 + 256;

Metadata bpe_metadata(const std::vector<std::string>& tokens,
                      const std::vector<std::string>& merges, const std::string& pre) {
  Metadata md("synthetic-bpe");
  md.set("tokenizer.ggml.model", Value::str("gpt2"));
  md.set("tokenizer.ggml.pre", Value::str(pre));
  md.set("tokenizer.ggml.tokens", Value::str_array(tokens));
  md.set("tokenizer.ggml.merges", Value::str_array(merges));
  return md;
}

TEST(TokenizerMetadata, UnknownPreTypeIsNamedWithTheSupportedOnes) {
  auto tok = Tokenizer::from_metadata(bpe_metadata({"a", "b"}, {"a b"}, "no-such-pre"));
  ASSERT_FALSE(tok.has_value());
  EXPECT_NE(tok.error().message.find("'no-such-pre'"), std::string::npos) << tok.error().message;
  EXPECT_NE(tok.error().message.find("qwen2"), std::string::npos) << tok.error().message;
  EXPECT_NE(tok.error().message.find("llama-bpe"), std::string::npos) << tok.error().message;
}

TEST(TokenizerMetadata, MissingOrInconsistentKeysAreErrors) {
  Metadata no_tokens("m.gguf");
  no_tokens.set("tokenizer.ggml.model", Value::str("llama"));
  auto a = Tokenizer::from_metadata(no_tokens);
  ASSERT_FALSE(a.has_value());
  EXPECT_NE(a.error().message.find("tokenizer.ggml.tokens"), std::string::npos);
  EXPECT_NE(a.error().message.find("m.gguf"), std::string::npos);

  Metadata bad_model = spm_metadata({}, {});
  bad_model.set("tokenizer.ggml.model", Value::str("wordpiece-x"));
  auto b = Tokenizer::from_metadata(bad_model);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().message.find("wordpiece-x"), std::string::npos);

  Metadata short_scores = spm_metadata({"ab"}, {1.0f});
  short_scores.set("tokenizer.ggml.scores", Value::f32_array({0.0f, 1.0f}));
  auto c = Tokenizer::from_metadata(short_scores);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("tokenizer.ggml.scores"), std::string::npos);

  auto d = Tokenizer::from_metadata(bpe_metadata({"a", "a"}, {}, "gpt-2"));
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().message.find("duplicate"), std::string::npos);

  Metadata no_merges = bpe_metadata({"a"}, {}, "gpt-2");
  Metadata without("x");
  for (const auto& [k, v] : no_merges.entries()) {
    if (k != "tokenizer.ggml.merges") without.set(k, v);
  }
  auto e = Tokenizer::from_metadata(without);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message.find("tokenizer.ggml.merges"), std::string::npos);
}

TEST(TokenizerMetadata, DefaultsFollowLlamaCpp) {
  const Tokenizer spm = Tokenizer::from_metadata(spm_metadata({}, {})).value();
  EXPECT_EQ(spm.kind(), "spm");
  EXPECT_TRUE(spm.add_bos_default());
  EXPECT_TRUE(spm.add_space_prefix());
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_EQ(spm.eos_id(), 2);
  EXPECT_EQ(spm.unk_id(), 0);

  Metadata no_prefix = spm_metadata({}, {});
  no_prefix.set("tokenizer.ggml.add_space_prefix", Value::boolean(false));
  EXPECT_FALSE(Tokenizer::from_metadata(no_prefix).value().add_space_prefix());

  // Byte-level BPE: BOS by default only for the pre-types llama.cpp adds it for (llama3 family).
  EXPECT_FALSE(load_shared("vocab/ggml-vocab-qwen2.gguf").add_bos_default());
  EXPECT_FALSE(load_shared("vocab/ggml-vocab-gpt-2.gguf").add_bos_default());
  const Tokenizer llama3 = load_shared("vocab/ggml-vocab-llama-bpe.gguf");
  EXPECT_TRUE(llama3.add_bos_default());
  EXPECT_FALSE(llama3.add_space_prefix());
  EXPECT_EQ(llama3.kind(), "bpe");
  EXPECT_EQ(llama3.pre_type(), "llama-bpe");
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_TRUE(load_shared("vocab/ggml-vocab-deepseek-coder.gguf").add_bos_default());  // by key
}

TEST(TokenizerSpm, MergesHighestScoreFirstAndFallsBackToBytes) {
  // "▁abc": whichever of "ab" and "bc" scores higher forms first, and the other cannot.
  const std::string sp = "\xe2\x96\x81";
  const std::vector<std::string> pieces = {sp, "a", "b", "c", "ab", "bc"};
  const int32_t space = kFirstSpmPiece, a = space + 1, c = space + 3, ab = space + 4, bc = ab + 1;
  const Tokenizer bc_first =
      Tokenizer::from_metadata(spm_metadata(pieces, {-5, -5, -5, -5, -2, -1})).value();
  EXPECT_EQ(bc_first.encode("abc", false), (std::vector<int32_t>{space, a, bc}));
  const Tokenizer ab_first =
      Tokenizer::from_metadata(spm_metadata(pieces, {-5, -5, -5, -5, -1, -2})).value();
  EXPECT_EQ(ab_first.encode("abc", false), (std::vector<int32_t>{space, ab, c}));
  // Equal scores: the leftmost pair wins.
  const Tokenizer tie =
      Tokenizer::from_metadata(spm_metadata(pieces, {-5, -5, -5, -5, -1, -1})).value();
  EXPECT_EQ(tie.encode("abc", false), (std::vector<int32_t>{space, ab, c}));
  // A merged pair can merge again when the longer text is a token.
  std::vector<std::string> with_abc = pieces;
  with_abc.push_back("abc");
  const Tokenizer longer =
      Tokenizer::from_metadata(spm_metadata(with_abc, {-5, -5, -5, -5, -2, -1, -3})).value();
  EXPECT_EQ(longer.encode("abc", false), (std::vector<int32_t>{space, bc + 1}));
  // 'é' (C3 A9) is no token: its bytes are.
  EXPECT_EQ(bc_first.encode("\xc3\xa9", false), (std::vector<int32_t>{space, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(bc_first.encode("", true), (std::vector<int32_t>{1}));
  EXPECT_EQ(bc_first.encode("a", true), (std::vector<int32_t>{1, space, a}));
  EXPECT_EQ(bc_first.decode(bc_first.encode("ab abc", false)), "ab abc");
}

TEST(TokenizerBpe, MergesLowestRankFirst) {
  // Byte-level: 'Ġ' is the encoded space. "b c" (rank 0) beats "a b" (rank 1), then "a bc".
  const std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc", "\xc4\xa0", "x"};
  const Tokenizer tok =
      Tokenizer::from_metadata(bpe_metadata(tokens, {"b c", "a b", "a bc"}, "gpt-2")).value();
  EXPECT_EQ(tok.encode("abc", false), (std::vector<int32_t>{5}));
  EXPECT_EQ(tok.encode("ab", false), (std::vector<int32_t>{3}));
  // Without "a bc" the rank order shows: a + bc, not ab + c.
  const Tokenizer no_abc =
      Tokenizer::from_metadata(bpe_metadata(tokens, {"b c", "a b"}, "gpt-2")).value();
  EXPECT_EQ(no_abc.encode("abc", false), (std::vector<int32_t>{0, 4}));
  // The gpt-2 regex splits " x" and "abc" into separate words, so no merge crosses them.
  EXPECT_EQ(tok.encode("abc x", false), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(tok.token_to_piece(6), " ");
  EXPECT_EQ(tok.decode(tok.encode("abc x", false)), "abc x");
}

TEST(TokenizerSpecial, ParseSpecialMapsTokenTextToTheToken) {
  const Tokenizer qwen = load_shared("vocab/ggml-vocab-qwen2.gguf");
  const int32_t im_start = qwen.token_id("<|im_start|>");
  ASSERT_EQ(im_start, 151644);
  const auto with = qwen.encode("<|im_start|>user", false, /*parse_special=*/true);
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(with[0], im_start);
  EXPECT_EQ(std::vector<int32_t>(with.begin() + 1, with.end()), qwen.encode("user", false));
  const auto without = qwen.encode("<|im_start|>user", false, false);
  EXPECT_EQ(std::count(without.begin(), without.end(), im_start), 0);
  EXPECT_EQ(qwen.decode(without), "<|im_start|>user");

  // SPM: text after a special token gets the space prefix again, as in llama.cpp.
  const Tokenizer spm = load_shared("vocab/ggml-vocab-llama-spm.gguf");
  const auto ids = spm.encode("Hi</s>Hi", false, true);
  std::vector<int32_t> expected = spm.encode("Hi", false);
  expected.push_back(spm.eos_id());
  for (const int32_t id : spm.encode("Hi", false)) expected.push_back(id);
  EXPECT_EQ(ids, expected);
}

TEST(TokenizerSpecial, EndOfGenerationTokens) {
  const Tokenizer qwen = load_shared("vocab/ggml-vocab-qwen2.gguf");
  EXPECT_TRUE(qwen.is_end_of_generation(qwen.token_id("<|im_end|>")));
  EXPECT_TRUE(qwen.is_end_of_generation(qwen.token_id("<|endoftext|>")));
  EXPECT_FALSE(qwen.is_end_of_generation(qwen.token_id("<|im_start|>")));
  const Tokenizer llama3 = load_shared("vocab/ggml-vocab-llama-bpe.gguf");
  EXPECT_TRUE(llama3.is_end_of_generation(llama3.token_id("<|eot_id|>")));
  EXPECT_TRUE(llama3.is_end_of_generation(128001));
  EXPECT_EQ(llama3.eot_id(), llama3.token_id("<|eot_id|>"));
  const Tokenizer phi3 = load_shared("vocab/ggml-vocab-phi-3.gguf");
  EXPECT_TRUE(phi3.is_end_of_generation(phi3.token_id("<|end|>")));
  EXPECT_TRUE(phi3.is_end_of_generation(phi3.eos_id()));
  EXPECT_FALSE(phi3.is_end_of_generation(-1));
  EXPECT_FALSE(phi3.is_end_of_generation(phi3.n_vocab()));
}

TEST(TokenizerPieces, PiecesOfEachTokenKind) {
  const Tokenizer spm = load_shared("vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.token_text(13), "<0x0A>");
  EXPECT_EQ(spm.token_to_piece(13), "\n");
  EXPECT_EQ(spm.token_to_piece(1), "");  // control
  EXPECT_EQ(spm.token_to_piece(1, /*special=*/true), "<s>");
  EXPECT_EQ(spm.token_to_piece(spm.token_id("\xe2\x96\x81Hello")), " Hello");
  EXPECT_EQ(spm.token_to_piece(-1), "");
  EXPECT_EQ(spm.token_to_piece(spm.n_vocab()), "");
  const Tokenizer gpt2 = load_shared("vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(gpt2.token_to_piece(gpt2.token_id("\xc4\xa0")), " ");
  EXPECT_EQ(gpt2.token_to_piece(gpt2.token_id("\xc4\x8a")), "\n");
  EXPECT_EQ(gpt2.token_to_piece(50256), "");
}

// A llama2.c-converted vocabulary: round trips, and decode keeps llama.cpp's leading-space rule.
TEST(TokenizerLlama2c, StoriesAndPycodeRoundTrip) {
  for (const char* rel : {"models/stories260K/stories260K.gguf", "models/pycode/pycode7m.gguf"}) {
    const Tokenizer tok = load_shared(rel);
    EXPECT_EQ(tok.kind(), "spm") << rel;
    EXPECT_TRUE(tok.add_bos_default()) << rel;
    for (const char* text_c : {"Once upon a time, there was a little dog.",
                               "    def f(x):\n        return x  # \xc3\xa9\n",
                               "\t\ttabs and \xf0\x9f\xa6\x99 emoji", "  two leading spaces"}) {
      const std::string text = text_c;
      const auto ids = tok.encode(text, false);
      EXPECT_EQ(tok.decode(ids), text) << rel;
      const auto with_bos = tok.encode(text, true);
      ASSERT_FALSE(with_bos.empty());
      EXPECT_EQ(with_bos[0], tok.bos_id());
      // BOS takes the "first token" slot in llama.cpp's detokenize, so the prefix space stays.
      EXPECT_EQ(tok.decode(with_bos), " " + text) << rel;
    }
  }
}

TEST(IncrementalDecoder, HoldsSplitCharactersUntilComplete) {
  const Tokenizer tok = load_shared("models/stories260K/stories260K.gguf");
  const std::string llama = "\xf0\x9f\xa6\x99";  // U+1F999, 4 bytes, no token of its own
  const auto ids = tok.encode("a" + llama + "b", false);
  IncrementalDecoder dec(tok);
  std::string streamed;
  int byte_tokens = 0;
  for (const int32_t id : ids) {
    const std::string out = dec.push(id);
    EXPECT_TRUE(is_valid_utf8(out)) << "a partial character was emitted";
    if (tok.token_text(id).rfind("<0x", 0) == 0) ++byte_tokens;
    streamed += out;
  }
  streamed += dec.flush();
  EXPECT_EQ(byte_tokens, 4) << "the test needs the emoji to be split into byte tokens";
  EXPECT_EQ(streamed, tok.decode(ids));
  EXPECT_EQ(streamed, "a" + llama + "b");
}

TEST(IncrementalDecoder, EmitsEachCharacterWhenItsLastByteArrives) {
  const Tokenizer tok = load_shared("models/stories260K/stories260K.gguf");
  const int32_t f0 = tok.token_id("<0xF0>"), x9f = tok.token_id("<0x9F>");
  const int32_t xa6 = tok.token_id("<0xA6>"), x99 = tok.token_id("<0x99>");
  IncrementalDecoder dec(tok, /*at_text_start=*/false);
  EXPECT_EQ(dec.push(f0), "");
  EXPECT_EQ(dec.push(x9f), "");
  EXPECT_EQ(dec.push(xa6), "");
  EXPECT_EQ(dec.push(x99), "\xf0\x9f\xa6\x99");
  EXPECT_EQ(dec.flush(), "");
}

TEST(IncrementalDecoder, ReplacesInvalidAndTruncatedBytes) {
  const Tokenizer tok = load_shared("models/stories260K/stories260K.gguf");
  const std::string replacement = "\xef\xbf\xbd";
  IncrementalDecoder dec(tok, false);
  EXPECT_EQ(dec.push(tok.token_id("<0xFF>")), replacement);  // never valid
  EXPECT_EQ(dec.push(tok.token_id("<0xE2>")), "");
  EXPECT_EQ(dec.push(tok.token_id("<0x41>")), replacement + "A");  // E2 cut short by 'A'
  EXPECT_EQ(dec.push(tok.token_id("<0xC3>")), "");
  EXPECT_EQ(dec.flush(), replacement);
  EXPECT_EQ(dec.flush(), "");
}

TEST(IncrementalDecoder, StreamsRealVocabularyLikeDecode) {
  const Tokenizer tok = load_shared("vocab/ggml-vocab-llama-spm.gguf");
  const std::string text = " this is \xf0\x9f\xa6\x99.cpp and \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe";
  const auto ids = tok.encode(text, false);
  IncrementalDecoder dec(tok);
  std::string streamed;
  for (const int32_t id : ids) streamed += dec.push(id);
  streamed += dec.flush();
  EXPECT_EQ(streamed, tok.decode(ids));
  EXPECT_EQ(streamed, text);
}

}  // namespace
}  // namespace pareto::tokenizer

namespace pareto::tokenizer {
namespace {

// The llama2.c checkpoint + tokenizer.bin path must give the same tokenizer as the converted GGUF.
TEST(TokenizerLlama2c, CheckpointTokenizerMatchesGguf) {
  auto file = formats::read_llama2c(test::shared_path("models/stories260K/stories260K.bin"),
                                    test::shared_path("models/stories260K/tok512.bin"));
  ASSERT_TRUE(file.has_value()) << file.error().message;
  auto from_bin = Tokenizer::from_metadata(file->metadata());
  ASSERT_TRUE(from_bin.has_value()) << from_bin.error().message;
  const Tokenizer from_gguf = load_shared("models/stories260K/stories260K.gguf");
  ASSERT_EQ(from_bin->n_vocab(), from_gguf.n_vocab());
  for (const char* text :
       {"Once upon a time, Lily saw a big red ball.", " \n\t x\xc3\xa9\xf0\x9f\xa6\x99"}) {
    EXPECT_EQ(from_bin->encode(text, true), from_gguf.encode(text, true)) << text;
  }
}

}  // namespace
}  // namespace pareto::tokenizer
