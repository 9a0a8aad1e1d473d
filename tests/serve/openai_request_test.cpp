// The OpenAI request parser: every field's type and range, NaN and infinities, defaults, and
// the shapes of prompts and messages the official clients send.
#include "serve/openai_request.h"

#include <gtest/gtest.h>

#include <string>

namespace pareto::serve {
namespace {

RequestLimits limits() {
  RequestLimits l;
  l.n_vocab = 512;
  return l;
}

ApiResult<OpenAiRequest> chat(const std::string& extra) {
  return parse_openai_request(Endpoint::kChatCompletions,
                              R"({"messages": [{"role": "user", "content": "hi"}])" + extra + "}",
                              limits());
}

ApiResult<OpenAiRequest> completion(const std::string& body) {
  return parse_openai_request(Endpoint::kCompletions, body, limits());
}

// The request fails with a 400 that names `param`.
void expect_400(const ApiResult<OpenAiRequest>& r, const std::string& param) {
  ASSERT_FALSE(r.has_value()) << "accepted, expected a 400 about " << param;
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().param, param) << r.error().message;
  EXPECT_FALSE(r.error().message.empty());
}

TEST(OpenAiRequest, ChatDefaultsRunUntilTheContextAndKeepEngineSampling) {
  auto r = chat("");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->params.max_tokens, -1);
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->n, 1);
  EXPECT_TRUE(r->add_generation_prompt);
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0]["content"], "hi");
  EXPECT_FLOAT_EQ(r->params.temperature, GenerateParams{}.temperature);
}

TEST(OpenAiRequest, ReadsEverySamplingField) {
  auto r = chat(R"(, "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3, "min_p": 0.1,
      "seed": -1, "stop": ["a", "bc"], "presence_penalty": 1.5, "frequency_penalty": -0.5,
      "repetition_penalty": 1.1, "logit_bias": {"5": -100, "7": 2.5}, "ignore_eos": true,
      "stream": true, "stream_options": {"include_usage": true}, "n": 2, "strategy": "ngram",
      "user": "someone", "unknown_field": {"nested": [1, 2]})");
  ASSERT_TRUE(r) << r.error().message;
  const GenerateParams& p = r->params;
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_FLOAT_EQ(p.top_p, 0.5f);
  EXPECT_EQ(p.top_k, 3);
  EXPECT_FLOAT_EQ(p.min_p, 0.1f);
  EXPECT_EQ(p.seed, ~uint64_t{0});
  EXPECT_EQ(p.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_FLOAT_EQ(p.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.1f);
  ASSERT_EQ(p.logit_bias.size(), 2u);
  EXPECT_EQ(p.logit_bias[0], (std::pair<int32_t, float>{5, -100.0f}));
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_EQ(p.strategy, "ngram");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->n, 2);
}

TEST(OpenAiRequest, MaxCompletionTokensWinsAndNullMeansDefault) {
  auto r = chat(R"(, "max_tokens": 5, "max_completion_tokens": 9, "temperature": null)");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->params.max_tokens, 9);
  EXPECT_FLOAT_EQ(r->params.temperature, GenerateParams{}.temperature);
  auto c = completion(R"({"prompt": "x"})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->params.max_tokens, 16);  // OpenAI's completions default
}

TEST(OpenAiRequest, WrongTypesAreA400NamingTheField) {
  expect_400(chat(R"(, "temperature": "hot")"), "temperature");
  expect_400(chat(R"(, "max_tokens": 1.5)"), "max_tokens");
  expect_400(chat(R"(, "max_tokens": "5")"), "max_tokens");
  expect_400(chat(R"(, "stream": 1)"), "stream");
  expect_400(chat(R"(, "stop": 5)"), "stop");
  expect_400(chat(R"(, "stop": ["a", 5])"), "stop[1]");
  expect_400(chat(R"(, "seed": 1.25)"), "seed");
  expect_400(chat(R"(, "logit_bias": [1])"), "logit_bias");
  expect_400(chat(R"(, "stream_options": true)"), "stream_options");
  expect_400(chat(R"(, "strategy": 3)"), "strategy");
}

TEST(OpenAiRequest, OutOfRangeValuesAndHugeNumbersAreA400) {
  expect_400(chat(R"(, "temperature": -0.1)"), "temperature");
  expect_400(chat(R"(, "top_p": 0)"), "top_p");
  expect_400(chat(R"(, "top_p": 1.5)"), "top_p");
  expect_400(chat(R"(, "min_p": 2)"), "min_p");
  expect_400(chat(R"(, "presence_penalty": 3)"), "presence_penalty");
  expect_400(chat(R"(, "frequency_penalty": -2.5)"), "frequency_penalty");
  expect_400(chat(R"(, "repetition_penalty": 0)"), "repetition_penalty");
  expect_400(chat(R"(, "max_tokens": 0)"), "max_tokens");
  expect_400(chat(R"(, "max_tokens": 99999999999999999999999)"), "max_tokens");
  expect_400(chat(R"(, "n": 0)"), "n");
  expect_400(chat(R"(, "n": 17)"), "n");
  expect_400(chat(R"(, "top_k": -2)"), "top_k");
  expect_400(chat(R"(, "logit_bias": {"512": 1})"), "logit_bias");
  expect_400(chat(R"(, "logit_bias": {"abc": 1})"), "logit_bias");
  expect_400(chat(R"(, "logit_bias": {"1": 101})"), "logit_bias.1");
  expect_400(chat(R"(, "stop": ["", "x"])"), "stop");
  expect_400(chat(R"(, "stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14",
      "15","16","17"])"),
             "stop");
}

TEST(OpenAiRequest, NaNAndInfinitiesNeverPass) {
  // JSON has no NaN or Infinity literal, and a number too large for a double (1e999) is not
  // valid JSON to the parser either: all are a 400 before any field is read.
  for (const std::string value : {"NaN", "Infinity", "-Infinity", "1e999", "-1e999"}) {
    auto r = chat(R"(, "temperature": )" + value);
    ASSERT_FALSE(r) << value;
    EXPECT_EQ(r.error().status, 400) << value;
    EXPECT_EQ(r.error().code, "invalid_json") << value;
  }
  // The largest finite double is a number, out of every range.
  expect_400(chat(R"(, "temperature": 1.7976931348623157e308)"), "temperature");
  expect_400(chat(R"(, "max_tokens": 1.7976931348623157e308)"), "max_tokens");
}

TEST(OpenAiRequest, BadBodiesAreA400) {
  const std::vector<std::string> bodies = {
      "", "{", "[1, 2]", "\"text\"", "null", "{\"messages\": [}", "{\"model\": \"\xff\xfe\"}"};
  for (const std::string& body : bodies) {
    auto r = parse_openai_request(Endpoint::kChatCompletions, body, limits());
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().status, 400) << body;
  }
}

TEST(OpenAiRequest, MessagesMustBeWellFormed) {
  auto missing = parse_openai_request(Endpoint::kChatCompletions, "{}", limits());
  expect_400(missing, "messages");
  expect_400(parse_openai_request(Endpoint::kChatCompletions, R"({"messages": []})", limits()),
             "messages");
  expect_400(parse_openai_request(Endpoint::kChatCompletions, R"({"messages": [{"content": "x"}]})",
                                  limits()),
             "messages[0].role");
  expect_400(parse_openai_request(Endpoint::kChatCompletions,
                                  R"({"messages": [{"role": "robot", "content": "x"}]})", limits()),
             "messages[0].role");
  expect_400(parse_openai_request(Endpoint::kChatCompletions,
                                  R"({"messages": [{"role": "user", "content": 5}]})", limits()),
             "messages[0].content");
  expect_400(
      parse_openai_request(
          Endpoint::kChatCompletions,
          R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", limits()),
      "messages[0].content[0].type");
}

TEST(OpenAiRequest, ContentPartsAreJoinedAndDeveloperIsSystem) {
  auto r = parse_openai_request(Endpoint::kChatCompletions, R"({"messages": [
      {"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "x"}]}]})",
                                limits());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->messages[0]["role"], "system");
  EXPECT_EQ(r->messages[1]["content"], "a\nb");
  EXPECT_EQ(r->messages[2]["content"], "");
  EXPECT_TRUE(r->messages[2].contains("tool_calls"));
}

TEST(OpenAiRequest, CompletionPromptsAsStringArrayOrTokenIds) {
  auto s = completion(R"({"prompt": "once"})");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->prompts.size(), 1u);
  EXPECT_EQ(s->prompts[0].text, "once");
  auto many = completion(R"({"prompt": ["a", "b"], "n": 2})");
  ASSERT_TRUE(many);
  EXPECT_EQ(many->prompts.size(), 2u);
  auto ids = completion(R"({"prompt": [1, 2, 3]})");
  ASSERT_TRUE(ids);
  ASSERT_EQ(ids->prompts.size(), 1u);
  EXPECT_TRUE(ids->prompts[0].is_tokens);
  EXPECT_EQ(ids->prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  auto nested = completion(R"({"prompt": [[1, 2], [3]]})");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->prompts.size(), 2u);
  expect_400(completion(R"({"prompt": [1, 512]})"), "prompt[1]");
  expect_400(completion(R"({"prompt": [1, -1]})"), "prompt[1]");
  expect_400(completion(R"({"prompt": []})"), "prompt");
  expect_400(completion(R"({"prompt": ""})"), "prompt");
  expect_400(completion(R"({"prompt": {"a": 1}})"), "prompt");
  expect_400(completion(R"({"max_tokens": 3})"), "prompt");
  expect_400(completion(R"({"prompt": ["a", "b", "c"], "n": 6})"), "n");
}

TEST(OpenAiRequest, LogprobsAsEachEndpointSpellsThem) {
  auto off = chat(R"(, "logprobs": false)");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->params.logprobs, -1);
  auto on = chat(R"(, "logprobs": true)");
  ASSERT_TRUE(on);
  EXPECT_EQ(on->params.logprobs, 0);
  auto top = chat(R"(, "logprobs": true, "top_logprobs": 5)");
  ASSERT_TRUE(top);
  EXPECT_EQ(top->params.logprobs, 5);
  auto legacy = completion(R"({"prompt": "a", "logprobs": 3})");
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->params.logprobs, 3);
  expect_400(chat(R"(, "top_logprobs": 3)"), "top_logprobs");  // needs logprobs: true
  expect_400(chat(R"(, "logprobs": true, "top_logprobs": 21)"), "top_logprobs");
  expect_400(chat(R"(, "logprobs": 2)"), "logprobs");
  expect_400(completion(R"({"prompt": "a", "logprobs": true})"), "logprobs");
  expect_400(completion(R"({"prompt": "a", "logprobs": 21})"), "logprobs");
}

TEST(OpenAiRequest, UnsupportedFeaturesAreRefusedClearly) {
  expect_400(chat(R"(, "response_format": {"type": "json_object"})"), "response_format");
  EXPECT_TRUE(chat(R"(, "response_format": {"type": "text"})"));
  expect_400(completion(R"({"prompt": "a", "echo": true})"), "echo");
}

}  // namespace
}  // namespace pareto::serve
