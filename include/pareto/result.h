// Result<T>: the error channel of Pareto's API and between its modules (tl::expected). An error
// carries a code (what kind of failure, for callers that map errors, e.g. to HTTP statuses) and a
// message that names the object, what was expected and what was found.
#pragma once

#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace pareto {

enum class ErrorCode {
  kInvalidArgument,    // bad input: a malformed file, an out-of-range parameter, an unknown name
  kContextOverflow,    // a prompt or generation does not fit the context
  kUnsupported,        // valid, but not implemented (a model feature, a type)
  kNotFound,           // a file, tensor or key that is not there
  kResourceExhausted,  // the request queue or the KV page pool is full; retry later
  kCancelled,          // the caller cancelled the request
  kInternal,           // a failure that is Pareto's fault
};

// "invalid_argument", "context_overflow", ...
constexpr std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kContextOverflow:
      return "context_overflow";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::kInvalidArgument;
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// `return make_error("gguf: ", path, ": bad magic");` (code kInvalidArgument)
template <class... Args>
tl::unexpected<Error> make_error(const Args&... args) {
  return tl::unexpected<Error>(Error{str_cat(args...), ErrorCode::kInvalidArgument});
}

// `return make_error_code(ErrorCode::kContextOverflow, "prompt has ", n, " tokens, ...");`
template <class... Args>
tl::unexpected<Error> make_error_code(ErrorCode code, const Args&... args) {
  return tl::unexpected<Error>(Error{str_cat(args...), code});
}

inline Status ok() {
  return {};
}

}  // namespace pareto
