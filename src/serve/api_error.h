// Errors as an OpenAI-compatible server returns them: an HTTP status and the body
// {"error": {"message", "type", "param", "code"}}, the shape the official clients parse (their
// BadRequestError, AuthenticationError, ... carry these fields). A bad request is always a 4xx:
// the official Python client retries every 5xx.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "pareto/result.h"

namespace pareto::serve {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault; "" when none
  std::string code;   // a machine-readable reason; "" when none
};

template <class T>
using ApiResult = tl::expected<T, ApiError>;

inline tl::unexpected<ApiError> bad_request(std::string message, std::string param = {},
                                            std::string code = {}) {
  return tl::unexpected<ApiError>(ApiError{400, std::move(message), "invalid_request_error",
                                           std::move(param), std::move(code)});
}

// {"error": {...}}; param and code are null when empty, as OpenAI sends them.
nlohmann::json error_body(const ApiError& error);

// An engine error as the client sees it: bad input and context overflow 400, a full queue or KV
// pool 429 (retry later), cancellation 499, Pareto's own failures 500.
ApiError api_error_from(const Error& error);

// Any endpoint that needs the engine, before the model has loaded.
inline ApiError model_loading_error() {
  return ApiError{503, "the model is still loading; retry when GET /health answers 200",
                  "unavailable", "", "model_loading"};
}

}  // namespace pareto::serve
