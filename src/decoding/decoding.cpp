#include "decoding/decoding.h"

#include <chrono>

#include "base/check.h"

namespace pareto::decoding {

Status Autoregressive::prefill(std::span<const int32_t> prompt) {
  if (prompt.empty()) return make_error("decoding: the prompt is empty (no tokens to evaluate)");
  const int n_prompt = static_cast<int>(prompt.size());
  const int room = cache_.capacity() - cache_.n_tokens();
  if (n_prompt > room) {
    return make_error(
        "prompt has ", n_prompt, " tokens, context is ", cache_.capacity(),
        cache_.n_tokens() > 0 ? str_cat(" (", cache_.n_tokens(), " already used)") : std::string());
  }
  PARETO_RETURN_IF_ERROR(model_.forward(prompt, cache_, logits_, pool_, forward_));
  for (int32_t t : prompt) sampler_.accept(t);
  pending_.reset();
  ready_ = true;
  return ok();
}

Result<std::vector<int32_t>> Autoregressive::step() {
  PARETO_CHECK_MSG(ready_, "Autoregressive::step before prefill");
  if (pending_) {
    if (cache_.n_tokens() >= cache_.capacity()) return std::vector<int32_t>{};
    const int32_t token = *pending_;
    PARETO_RETURN_IF_ERROR(
        model_.forward(std::span<const int32_t>(&token, 1), cache_, logits_, pool_, forward_));
  }
  const auto n_vocab = static_cast<size_t>(model_.config().n_vocab);
  PARETO_CHECK(logits_.size() >= n_vocab);
  // The last row holds the next token's logits (the model may return more rows).
  const std::span<const float> last(logits_.data() + logits_.size() - n_vocab, n_vocab);
  const int32_t next = sampler_.sample(last);
  sampler_.accept(next);
  pending_ = next;
  return std::vector<int32_t>{next};
}

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kEndOfGeneration:
      return "end_of_generation";
    case StopReason::kContextFull:
      return "context_full";
    case StopReason::kCallback:
      return "callback";
  }
  return "unknown";
}

Result<GenerateResult> generate(DecodingStrategy& strategy, std::span<const int32_t> prompt,
                                const GenerateOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  GenerateResult result;
  const auto t_prefill = Clock::now();
  PARETO_RETURN_IF_ERROR(strategy.prefill(prompt));
  result.prefill_seconds = seconds_since(t_prefill);

  const auto t_decode = Clock::now();
  const auto limit_reached = [&] {
    return options.max_tokens >= 0 && static_cast<int>(result.tokens.size()) >= options.max_tokens;
  };
  bool done = false;
  if (limit_reached()) {
    result.stop_reason = StopReason::kMaxTokens;
    done = true;
  }
  while (!done) {
    PARETO_TRY(const std::vector<int32_t> accepted, strategy.step());
    if (accepted.empty()) {
      result.stop_reason = StopReason::kContextFull;
      break;
    }
    for (int32_t token : accepted) {
      if (options.is_end_of_generation && options.is_end_of_generation(token)) {
        result.stop_reason = StopReason::kEndOfGeneration;
        done = true;
        break;
      }
      result.tokens.push_back(token);
      if (options.on_token && !options.on_token(token)) {
        result.stop_reason = StopReason::kCallback;
        done = true;
        break;
      }
      if (limit_reached()) {
        result.stop_reason = StopReason::kMaxTokens;
        done = true;
        break;
      }
    }
  }
  result.decode_seconds = seconds_since(t_decode);
  return result;
}

}  // namespace pareto::decoding
