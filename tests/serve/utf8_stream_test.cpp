// Streamed text never splits a UTF-8 character across chunks, seen from outside the server. The
// shared models write ASCII, so a random-weight model from gen-model is served instead: its
// vocabulary holds the 256 byte tokens, and sampled hot it emits bytes that form two- and three-
// byte characters across several tokens, stray continuation bytes and lone lead bytes. The
// server writes JSON with invalid bytes replaced by U+FFFD, so a split character would show as
// replacement characters in the chunks: the chunks joined must equal the whole response's text.
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "bench/model_gen.h"
#include "serve/server_fixture.h"

namespace pareto::serve {
namespace {

using nlohmann::json;

// Whether `s` is well-formed UTF-8; counts the characters above U+007F other than U+FFFD (the
// decoder's replacement for bytes that form no character).
bool valid_utf8(std::string_view s, int* multibyte) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80           ? 1
                  : (c >> 5) == 0x6  ? 2
                  : (c >> 4) == 0xE  ? 3
                  : (c >> 3) == 0x1E ? 4
                                     : 0;
    if (n == 0 || i + static_cast<size_t>(n) > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;  // overlong, out of range, surrogate
    }
    if (n > 1 && cp != 0xFFFD) ++*multibyte;
    i += static_cast<size_t>(n);
  }
  return true;
}

std::string random_model() {
  auto shape = bench::find_model_shape("tiny");
  EXPECT_TRUE(shape) << shape.error().message;
  bench::GenerateOptions o;
  o.type = TensorType::F32;
  o.weight_std = 0.5f;  // flat enough distributions that sampling wanders over the vocabulary
  ThreadPool pool(2);
  const std::string path = (test::temp_dir("serve_utf8") / "tiny.gguf").string();
  auto status = bench::generate_model(*shape, o, path, pool);
  EXPECT_TRUE(status) << status.error().message;
  return path;
}

TEST(Utf8Streaming, ChunksNeverSplitACharacterAndJoinToTheWholeText) {
  LoadOptions load = engine_options();
  RunningServer s(ServerOptions{}, load, true, random_model());
  auto c = s.client();
  // gen-model's vocabulary: <unk>, <s>, </s>, then byte 0xXX at id 3 + 0xXX. The bytes of "é"
  // (C3 A9) and "€" (E2 82 AC) get a bias, so that whole characters, and broken ones, are common.
  const auto detokenize = [&](const json& ids) {
    auto r = c.Post("/detokenize", json{{"tokens", ids}}.dump(), "application/json");
    return r && r->status == 200 ? json::parse(r->body)["content"].get<std::string>() : "";
  };
  ASSERT_EQ(detokenize({3 + 0xC3, 3 + 0xA9}), "\u00e9");
  ASSERT_EQ(detokenize({3 + 0xE2, 3 + 0x82, 3 + 0xAC}), "\u20ac");
  json bias;
  for (int byte : {0xC3, 0xA9, 0xE2, 0x82, 0xAC}) bias[std::to_string(3 + byte)] = 30;
  json body = {{"prompt", "a"}, {"max_tokens", 240},  {"temperature", 1.5},
               {"top_k", 0},    {"top_p", 1.0},       {"min_p", 0.0},
               {"seed", 11},    {"ignore_eos", true}, {"logit_bias", bias}};
  auto whole = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const std::string text = json::parse(whole->body)["choices"][0]["text"];

  body["stream"] = true;
  auto streamed = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200) << streamed->body;
  std::string joined;
  int chunks = 0, multibyte = 0;
  size_t pos = 0;
  const std::string& raw = streamed->body;
  while (pos < raw.size()) {
    size_t end = raw.find("\n\n", pos);
    if (end == std::string::npos) end = raw.size();
    const std::string event = raw.substr(pos, end - pos);
    pos = end + 2;
    if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
    const json j = json::parse(event.substr(6));
    if (j["choices"].empty()) continue;
    const std::string piece = j["choices"][0]["text"];
    if (piece.empty()) continue;
    ++chunks;
    EXPECT_TRUE(valid_utf8(piece, &multibyte)) << "chunk " << chunks << ": " << json(piece).dump();
    joined += piece;
  }
  EXPECT_EQ(joined, text);
  EXPECT_GT(chunks, 50);
  // The test means something only if characters of several bytes went through.
  EXPECT_GE(multibyte, 10) << json(text).dump();
}

}  // namespace
}  // namespace pareto::serve
