// The OpenAI request bodies Pareto serves (POST /v1/chat/completions and /v1/completions),
// parsed and checked into engine parameters. Every field is checked for its type and range
// (NaN and infinities included) and a bad one is a 400 naming it; unknown fields are accepted
// and ignored, as vLLM does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pareto/pareto.h"
#include "serve/api_error.h"

namespace pareto::serve {

enum class Endpoint { kChatCompletions, kCompletions };

struct RequestLimits {
  int32_t n_vocab = 0;   // token ids (prompts, logit_bias) must be below it
  int max_choices = 16;  // n (times the prompts of a completion) at most this
  int max_stop_strings = 16;
  int default_max_tokens = 16;  // completions without max_tokens (OpenAI's default)
};

// A completion prompt: text to tokenize, or token ids as given.
struct Prompt {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string model;
  std::vector<Prompt> prompts;  // completions: one or more prompts
  // Chat: the messages with each content flattened to a string (text parts joined by "\n"),
  // other message fields (tool_calls, name, ...) kept as sent, for the chat template.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;                 // null when absent
  nlohmann::ordered_json chat_template_kwargs;  // object (possibly empty): extra template variables
  bool add_generation_prompt = true;
  GenerateParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int n = 1;                   // choices per prompt
};

ApiResult<OpenAiRequest> parse_openai_request(Endpoint endpoint, std::string_view body,
                                              const RequestLimits& limits);

// The body of a request as JSON (keys in the order sent, as the chat template's tojson prints
// them): an object, or a 400 naming what is wrong (invalid JSON or UTF-8,
// not an object).
ApiResult<nlohmann::ordered_json> parse_json_object(std::string_view body);
// A JSON array of token ids in [0, n_vocab); errors name `name` and the element.
ApiResult<std::vector<int32_t>> token_array(const nlohmann::ordered_json& array,
                                            std::string_view name, int32_t n_vocab);

}  // namespace pareto::serve
