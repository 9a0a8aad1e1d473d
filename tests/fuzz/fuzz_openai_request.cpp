// libFuzzer target: the OpenAI request parser (src/serve/openai_request.h) on arbitrary bytes,
// for both routes. Must never crash, hang or leak; a rejection must be a 4xx with a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  pareto::serve::RequestLimits limits;
  limits.n_vocab = 512;
  for (auto endpoint :
       {pareto::serve::Endpoint::kChatCompletions, pareto::serve::Endpoint::kCompletions}) {
    auto r = pareto::serve::parse_openai_request(endpoint, body, limits);
    if (!r && (r.error().status < 400 || r.error().status >= 500 || r.error().message.empty())) {
      std::abort();  // every refusal is the client's fault and says why
    }
  }
  return 0;
}
