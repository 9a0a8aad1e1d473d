// pareto::Engine (include/pareto/pareto.h): the public facade over engine::Session.
#include <utility>

#include "engine/session.h"
#include "pareto/pareto.h"

namespace pareto {

// The public defaults mirror the sampler's; this keeps the two from drifting apart.
static_assert(GenerateParams{}.temperature == sampling::SamplingParams{}.temperature);
static_assert(GenerateParams{}.top_k == sampling::SamplingParams{}.top_k);
static_assert(GenerateParams{}.top_p == sampling::SamplingParams{}.top_p);
static_assert(GenerateParams{}.min_p == sampling::SamplingParams{}.min_p);
static_assert(GenerateParams{}.repeat_penalty == sampling::SamplingParams{}.repeat_penalty);
static_assert(GenerateParams{}.repeat_last_n == sampling::SamplingParams{}.repeat_last_n);
static_assert(GenerateParams{}.seed == sampling::kDefaultSeed);

double GenerationStats::prompt_tokens_per_second() const {
  return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0.0;
}

double GenerationStats::generated_tokens_per_second() const {
  return generate_seconds > 0 ? generated_tokens / generate_seconds : 0.0;
}

Engine::Engine(std::unique_ptr<engine::Session> session) : session_(std::move(session)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const std::string& model_path,
                                             const LoadOptions& options) {
  engine::SessionOptions so;
  so.tokenizer_path = options.tokenizer_path;
  so.n_threads = options.n_threads;
  so.context_length = options.context_length;
  so.vocab_only = options.vocab_only;
  so.flash_attention = options.flash_attention;
  PARETO_TRY(auto session, engine::Session::open(model_path, so));
  return std::unique_ptr<Engine>(new Engine(std::move(session)));
}

std::vector<int32_t> Engine::tokenize(std::string_view text, bool add_bos) const {
  const auto& tok = session_->tokenizer();
  return tok.encode(text, add_bos && tok.add_bos_default());
}

std::string Engine::detokenize(std::span<const int32_t> tokens) const {
  return session_->tokenizer().decode(tokens);
}

int Engine::context_length() const {
  return session_->context_length();
}

Result<Generation> Engine::generate(std::string_view prompt, const GenerateParams& params,
                                    const StreamCallback& on_text) {
  return generate_from_tokens(tokenize(prompt, params.add_bos), params, on_text);
}

Result<Generation> Engine::generate_from_tokens(std::vector<int32_t> prompt_tokens,
                                                const GenerateParams& params,
                                                const StreamCallback& on_text) {
  const auto& tok = session_->tokenizer();
  const int n_vocab = tok.n_vocab();
  for (int32_t t : prompt_tokens) {
    if (t < 0 || t >= n_vocab) {
      return make_error("prompt token ", t, " is out of range (vocabulary has ", n_vocab,
                        " tokens)");
    }
  }
  PARETO_TRY(engine::Sequence sequence, session_->create_sequence());

  sampling::SamplingParams sp;
  sp.temperature = params.temperature;
  sp.top_k = params.top_k;
  sp.top_p = params.top_p;
  sp.min_p = params.min_p;
  sp.repeat_penalty = params.repeat_penalty;
  sp.repeat_last_n = params.repeat_last_n;
  sp.seed = params.seed;

  Generation out;
  // The decoder sees the prompt first so the generated text continues it exactly (no leading
  // space dropped as at the start of a text); the prompt's own output is discarded.
  tokenizer::IncrementalDecoder decoder(tok);
  for (int32_t t : prompt_tokens) decoder.push(t);
  decoding::GenerateOptions options;
  options.max_tokens = params.max_tokens;
  options.on_token = [&](int32_t token) {
    std::string piece = decoder.push(token);
    out.text += piece;
    return on_text ? on_text(piece, token) : true;
  };
  PARETO_TRY(decoding::GenerateResult result,
             session_->generate(sequence, prompt_tokens, sp, std::move(options)));
  if (std::string rest = decoder.flush(); !rest.empty()) {
    out.text += rest;
    if (on_text) on_text(rest, -1);
  }
  out.stats.prompt_tokens = static_cast<int>(prompt_tokens.size());
  out.stats.prompt_seconds = result.prefill_seconds;
  out.stats.generated_tokens = static_cast<int>(result.tokens.size());
  out.stats.generate_seconds = result.decode_seconds;
  out.prompt_tokens = std::move(prompt_tokens);
  out.tokens = std::move(result.tokens);
  out.stop_reason = std::string(decoding::stop_reason_name(result.stop_reason));
  return out;
}

}  // namespace pareto
