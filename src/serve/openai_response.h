// The OpenAI response bodies: a whole completion, the chunks of a stream (Server-Sent Events, as
// the official clients parse them) and the error event that ends a stream that already began.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pareto/pareto.h"
#include "serve/api_error.h"
#include "serve/openai_request.h"

namespace pareto::serve {

struct ResponseHeader {
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens the prefix cache supplied
};

struct ChoiceText {
  int index = 0;
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  nlohmann::json logprobs;    // null, or the endpoint's logprobs object
};

// "stop" (end of generation or a stop string) or "length" (max_tokens or the context).
std::string_view finish_reason(StopReason reason);

nlohmann::json usage_json(const Usage& usage);
nlohmann::json completion_body(const ResponseHeader& h, const std::vector<ChoiceText>& choices,
                               const Usage& usage);

// One streamed chunk for choice `index`: the first of a chat choice carries the role; the last
// carries finish_reason with an empty delta. with_usage_field adds "usage": null (what OpenAI
// sends on every chunk once stream_options.include_usage is set).
nlohmann::json chunk_body(const ResponseHeader& h, int index, std::string_view text, bool with_role,
                          std::optional<std::string_view> finish, bool with_usage_field,
                          const nlohmann::json& logprobs = nullptr);
// The usage chunk: "choices": [] and the totals.
nlohmann::json usage_chunk_body(const ResponseHeader& h, const Usage& usage);

// "data: <json>\n\n" (invalid UTF-8, which the engine never emits, would be replaced, not thrown).
std::string sse_event(const nlohmann::json& body);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// JSON text for any body (compact; invalid UTF-8 replaced).
std::string dump_json(const nlohmann::json& body);

}  // namespace pareto::serve
