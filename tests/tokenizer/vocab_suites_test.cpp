// llama.cpp's tokenizer suites (shared/vocab/ggml-vocab-*.gguf with .inp/.out): every expected id
// line must be reproduced, with the strings split and tokenized exactly as llama.cpp's
// tests/test-tokenizer-0.cpp does (add_special = false, parse_special = false). Also checks that
// pieces and decode give the text back where llama.cpp's detokenizer can.
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "formats/model_file.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace pareto::tokenizer {
namespace {

struct SuiteCase {
  std::string text;
  std::vector<int32_t> expected;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// As test-tokenizer-0.cpp: the .inp file is cut at every "\n__ggml_vocab_test__\n" (so the file's
// final separator leaves no empty trailing string); .out has one line of ids per string.
std::vector<SuiteCase> read_suite(const std::string& gguf_path) {
  const std::string raw = read_file(gguf_path + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(gguf_path + ".out");
  std::vector<std::vector<int32_t>> outputs;
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    std::vector<int32_t> row;
    for (int32_t id; ids >> id;) row.push_back(id);
    outputs.push_back(std::move(row));
  }
  EXPECT_EQ(inputs.size(), outputs.size()) << gguf_path << ": .inp and .out disagree on the count";
  std::vector<SuiteCase> cases;
  for (size_t i = 0; i < std::min(inputs.size(), outputs.size()); ++i) {
    cases.push_back({inputs[i], outputs[i]});
  }
  return cases;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// Escapes control and non-ASCII bytes so failure messages stay readable.
std::string printable(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F) {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", b);
      out += buf;
    }
  }
  return out;
}

Tokenizer load(const std::string& name) {
  const std::string path = test::shared_path("vocab/ggml-vocab-" + name + ".gguf");
  auto file = formats::read_gguf(path);
  EXPECT_TRUE(file.has_value()) << (file ? "" : file.error().message);
  if (!file) std::abort();
  auto tok = Tokenizer::from_metadata(file->metadata());
  EXPECT_TRUE(tok.has_value()) << (tok ? "" : tok.error().message);
  if (!tok) std::abort();
  return std::move(*tok);
}

void run_suite(const std::string& name) {
  const std::string path = test::shared_path("vocab/ggml-vocab-" + name + ".gguf");
  const Tokenizer tok = load(name);
  const std::vector<SuiteCase> cases = read_suite(path);
  ASSERT_GE(cases.size(), 40u) << name << ": suite looks truncated";
  int failures = 0;
  std::string report;
  for (const SuiteCase& c : cases) {
    const std::vector<int32_t> got = tok.encode(c.text, /*add_bos=*/false, /*parse_special=*/false);
    if (got == c.expected) continue;
    if (++failures <= 5) {
      report += "\n  text:     '" + printable(c.text) +
                "'\n  expected: " + ids_to_string(c.expected) +
                "\n  got:      " + ids_to_string(got);
    }
  }
  EXPECT_EQ(failures, 0) << name << ": " << failures << " of " << cases.size()
                         << " strings tokenize differently; first ones:" << report;
}

TEST(VocabSuite, LlamaSpm) {
  run_suite("llama-spm");
}
TEST(VocabSuite, Phi3) {
  run_suite("phi-3");
}
TEST(VocabSuite, LlamaBpe) {
  run_suite("llama-bpe");
}
TEST(VocabSuite, Qwen2) {
  run_suite("qwen2");
}
TEST(VocabSuite, Gpt2) {
  run_suite("gpt-2");
}
TEST(VocabSuite, DeepseekCoder) {
  run_suite("deepseek-coder");
}
TEST(VocabSuite, Starcoder) {
  run_suite("starcoder");
}

// Text patterns llama.cpp's clean_up_tokenization_spaces rewrites in detokenize.
bool touched_by_space_cleanup(const std::string& s) {
  for (const char* p : {" ?", " !", " .", " ,", " 's", " 'm", " 're", " 've", " ' "}) {
    if (s.find(p) != std::string::npos) return true;
  }
  return false;
}

// Every suite string is valid UTF-8 without special-token text, so the pieces must give the input
// back exactly (SPM: after the one space its prefix added). decode() must too, except where
// llama.cpp's detokenizer rewrites spaces on purpose (clean_up_tokenization_spaces, on for some
// BPE vocabularies); those strings are listed, and decode must then differ only by that rewrite.
void run_round_trip(const std::string& name) {
  const std::string path = test::shared_path("vocab/ggml-vocab-" + name + ".gguf");
  const Tokenizer tok = load(name);
  int piece_failures = 0, decode_failures = 0;
  std::string report, cleaned;
  for (const SuiteCase& c : read_suite(path)) {
    const std::vector<int32_t> ids = tok.encode(c.text, false, false);
    std::string pieces;
    for (const int32_t id : ids) pieces += tok.token_to_piece(id);
    std::string expected_pieces;
    if (tok.add_space_prefix() && !c.text.empty()) expected_pieces += ' ';
    expected_pieces += c.text;
    if (pieces != expected_pieces && ++piece_failures <= 3) {
      report += "\n  pieces of '" + printable(c.text) + "' = '" + printable(pieces) + "'";
    }
    const std::string decoded = tok.decode(ids);
    if (decoded == c.text) continue;
    if (touched_by_space_cleanup(c.text) && decoded.size() < c.text.size()) {
      cleaned += "\n  '" + printable(c.text.substr(0, 40)) + "...'";
      continue;
    }
    if (++decode_failures <= 3) {
      report += "\n  decode of '" + printable(c.text) + "' = '" + printable(decoded) + "'";
    }
  }
  EXPECT_EQ(piece_failures, 0) << name << report;
  EXPECT_EQ(decode_failures, 0) << name << report;
  if (!cleaned.empty()) {
    std::printf(
        "[ note ] %s: decode() drops spaces (llama.cpp's clean_up_tokenization_spaces) in:%s\n",
        name.c_str(), cleaned.c_str());
  }
}

TEST(VocabRoundTrip, LlamaSpm) {
  run_round_trip("llama-spm");
}
TEST(VocabRoundTrip, Phi3) {
  run_round_trip("phi-3");
}
TEST(VocabRoundTrip, LlamaBpe) {
  run_round_trip("llama-bpe");
}
TEST(VocabRoundTrip, Qwen2) {
  run_round_trip("qwen2");
}
TEST(VocabRoundTrip, Gpt2) {
  run_round_trip("gpt-2");
}
TEST(VocabRoundTrip, DeepseekCoder) {
  run_round_trip("deepseek-coder");
}
TEST(VocabRoundTrip, Starcoder) {
  run_round_trip("starcoder");
}

}  // namespace
}  // namespace pareto::tokenizer
