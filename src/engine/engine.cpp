// pareto::Engine (include/pareto/pareto.h): the public facade over engine::Session and
// engine::Scheduler.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <utility>

#include "decoding/suffix_automaton.h"
#include "engine/scheduler.h"
#include "engine/session.h"
#include "kv/kv_type.h"
#include "pareto/pareto.h"

namespace pareto {

// The public defaults mirror the sampler's: tests/engine/engine_defaults_test.cpp checks it
// (GenerateParams holds strings, so it is not a constant expression for every compiler).

struct Engine::StepLock {
  std::mutex mutex;
};

namespace {

// SAM Decoding's static corpus: each file one document of the model's tokens (no BOS).
Result<std::shared_ptr<const decoding::SuffixAutomaton>> load_sam_corpus(
    const std::vector<std::string>& files, const tokenizer::Tokenizer& tokenizer) {
  std::vector<std::vector<int32_t>> documents;
  for (const std::string& file : files) {
    std::error_code ec;
    std::ifstream in;
    if (std::filesystem::is_regular_file(file, ec)) in.open(file, std::ios::binary);
    if (!in.is_open()) {
      return make_error_code(ErrorCode::kNotFound, "sam corpus ", file, ": not a readable file");
    }
    std::stringstream text;
    text << in.rdbuf();
    if (in.bad()) {
      return make_error_code(ErrorCode::kNotFound, "sam corpus ", file, ": reading it failed");
    }
    documents.push_back(tokenizer.encode(text.str(), false, false));
  }
  return std::make_shared<const decoding::SuffixAutomaton>(
      decoding::SuffixAutomaton::of_documents(documents));
}

Result<Generation> to_generation(const engine::RequestResult& r) {
  if (r.error) return tl::unexpected<Error>(*r.error);
  Generation g;
  g.id = r.id;
  g.prompt_tokens = r.prompt_tokens;
  g.tokens = r.tokens;
  g.text = r.text;
  g.logprobs.reserve(r.logprobs.size());
  for (const sampling::TokenLogprobs& lp : r.logprobs) {
    g.logprobs.push_back({lp.token, lp.logprob, lp.top});
  }
  g.stop_reason = r.stop_reason;
  g.stats.prompt_tokens = static_cast<int>(r.prompt_tokens.size());
  g.stats.cached_prompt_tokens = r.cached_prompt_tokens;
  g.stats.prompt_seconds = r.prompt_seconds;
  g.stats.generated_tokens = static_cast<int>(r.tokens.size());
  g.stats.generate_seconds = r.decode_seconds;
  g.stats.queue_seconds = r.queue_seconds;
  const decoding::SpeculationStats& sp = r.speculation;
  g.stats.speculation = {sp.steps,          sp.drafted,    sp.accepted,   sp.draft_seconds,
                         sp.verify_seconds, sp.drafted_at, sp.accepted_at};
  return g;
}

}  // namespace

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kEndOfGeneration:
      return "end_of_generation";
    case StopReason::kStopString:
      return "stop_string";
    case StopReason::kContextFull:
      return "context_full";
    case StopReason::kCallback:
      return "callback";
    case StopReason::kCancelled:
      return "cancelled";
    case StopReason::kError:
      return "error";
  }
  return "error";
}

double GenerationStats::prompt_tokens_per_second() const {
  return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0.0;
}

double GenerationStats::generated_tokens_per_second() const {
  return generate_seconds > 0 ? generated_tokens / generate_seconds : 0.0;
}

Engine::Engine(std::unique_ptr<engine::Session> session, std::unique_ptr<engine::Session> draft,
               std::unique_ptr<engine::Scheduler> scheduler)
    : session_(std::move(session)),
      draft_(std::move(draft)),
      scheduler_(std::move(scheduler)),
      step_lock_(std::make_unique<StepLock>()) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const std::string& model_path,
                                             const LoadOptions& options) {
  engine::SessionOptions so;
  so.tokenizer_path = options.tokenizer_path;
  so.n_threads = options.n_threads;
  so.context_length = options.context_length;
  so.vocab_only = options.vocab_only;
  so.model.place_weights = options.place_weights;
  if (!options.kernels.empty()) {
    PARETO_TRY(so.model.kernel_path, kernels::kernel_path_from_name(options.kernels));
  }
  engine::SchedulerOptions sched;
  PARETO_TRY(sched.key_type, kv::parse_kv_type(options.cache_type_k));
  PARETO_TRY(sched.value_type, kv::parse_kv_type(options.cache_type_v));
  sched.kivi_residual = options.kivi_residual;
  std::optional<TensorType> draft_weight_type;
  if (!options.draft_weight_type.empty()) {
    if (options.draft_model_path.empty()) {
      return make_error_code(ErrorCode::kInvalidArgument, "draft weight type '",
                             options.draft_weight_type, "' given without a draft model");
    }
    PARETO_TRY(draft_weight_type, model::parse_weight_type(options.draft_weight_type));
  }
  PARETO_TRY(auto session, engine::Session::open(model_path, so));
  std::unique_ptr<engine::Session> draft;
  if (!options.draft_model_path.empty() && session->has_model()) {
    engine::SessionOptions dso = so;
    dso.model.weight_type = draft_weight_type;
    dso.n_threads = options.draft_threads;
    if (dso.n_threads <= 0) {
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(options.draft_model_path, ec);
      dso.n_threads = !ec && bytes < (64u << 20) ? 1 : options.n_threads;
    }
    dso.context_length = 0;
    PARETO_TRY(draft, engine::Session::open(options.draft_model_path, dso));
    PARETO_RETURN_IF_ERROR(engine::check_draft_vocabulary(
        session->tokenizer(), model_path, draft->tokenizer(), options.draft_model_path));
  }
  std::unique_ptr<engine::Scheduler> scheduler;
  if (session->has_model()) {
    sched.context_length = session->context_length();
    sched.max_sequences = options.max_sequences;
    sched.max_queue = options.max_queue;
    const int64_t kv_tokens = options.kv_cache_tokens < 0
                                  ? int64_t{session->context_length()} * options.max_sequences
                                  : options.kv_cache_tokens;
    if (kv_tokens > 0) {
      // Pages hold page_entries entries of one layer and KV head (kv_pool.h).
      const kv::KvPoolOptions po =
          session->model().kv_pool_options(sched.key_type, sched.value_type, 0);
      const int64_t per_head = (kv_tokens + po.page_entries - 1) / po.page_entries;
      sched.max_kv_pages = per_head * po.n_layers * po.n_kv_heads;
    }
    sched.prefix_cache = options.prefix_cache;
    if (options.prefix_cache && sched.max_kv_pages == 0) {
      const kv::KvPoolOptions po =
          session->model().kv_pool_options(sched.key_type, sched.value_type, 0);
      const int64_t tokens = int64_t{session->context_length()} * options.max_sequences;
      sched.prefix_cache_max_pages =
          (tokens + po.page_entries - 1) / po.page_entries * po.n_layers * po.n_kv_heads;
    }
    sched.step_tokens = options.step_tokens;
    sched.forward.batch_invariant = options.batch_invariant;
    sched.draft_max = options.draft_max;
    sched.fixed_draft_length = options.fixed_draft_length;
    sched.speculation_max_batch = options.speculation_max_batch;
    if (!options.sam_corpus_files.empty()) {
      PARETO_TRY(sched.sam_corpus, load_sam_corpus(options.sam_corpus_files, session->tokenizer()));
    }
    if (draft) {
      sched.draft_model = &draft->model();
      sched.draft_pool = &draft->pool();
    }
    if (options.flash_attention) {
      sched.forward.attention = kernels::AttentionAlgorithm::kOnlineSoftmax;
    }
    PARETO_TRY(scheduler, engine::Scheduler::create(session->model(), session->tokenizer(),
                                                    session->pool(), sched));
  }
  return std::unique_ptr<Engine>(
      new Engine(std::move(session), std::move(draft), std::move(scheduler)));
}

std::vector<int32_t> Engine::tokenize(std::string_view text, bool add_bos,
                                      bool parse_special) const {
  const auto& tok = session_->tokenizer();
  return tok.encode(text, add_bos && tok.add_bos_default(), parse_special);
}

std::string Engine::detokenize(std::span<const int32_t> tokens) const {
  return session_->tokenizer().decode(tokens);
}

std::string Engine::token_piece(int32_t token) const {
  return session_->tokenizer().token_to_piece(token, /*special=*/true);
}

int Engine::context_length() const {
  return session_->context_length();
}

ModelInfo Engine::model_info() const {
  ModelInfo info;
  const formats::ModelFile& file = session_->file();
  info.path = file.path();
  info.name = std::filesystem::path(file.path()).stem().string();
  if (auto name = file.metadata().get_string("general.name"); name && !name->empty()) {
    info.name = *name;
  }
  if (auto tmpl = file.metadata().get_string("tokenizer.chat_template")) info.chat_template = *tmpl;
  const tokenizer::Tokenizer& tok = session_->tokenizer();
  info.n_vocab = tok.n_vocab();
  if (tok.bos_id() >= 0) info.bos_token = tok.token_text(tok.bos_id());
  if (tok.eos_id() >= 0) info.eos_token = tok.token_text(tok.eos_id());
  info.context_length = session_->context_length();
  if (session_->has_model()) {
    info.trained_context_length = session_->model().config().context_length;
  }
  return info;
}

Result<uint64_t> Engine::submit(std::vector<int32_t> prompt_tokens, const GenerateParams& params,
                                StreamCallback on_text, DoneCallback on_done,
                                LogprobCallback on_logprob) {
  if (!scheduler_) {
    return make_error(session_->file().path(), ": loaded vocab-only; no model to run");
  }
  engine::RequestParams rp;
  rp.sampling.temperature = params.temperature;
  rp.sampling.top_k = params.top_k;
  rp.sampling.top_p = params.top_p;
  rp.sampling.min_p = params.min_p;
  rp.sampling.repeat_penalty = params.repeat_penalty;
  rp.sampling.repeat_last_n = params.repeat_last_n;
  rp.sampling.frequency_penalty = params.frequency_penalty;
  rp.sampling.presence_penalty = params.presence_penalty;
  rp.sampling.logit_bias = params.logit_bias;
  rp.sampling.seed = params.seed;
  rp.max_tokens = params.max_tokens;
  rp.stop = params.stop;
  rp.ignore_eos = params.ignore_eos;
  if (!params.strategy.empty()) rp.strategy = params.strategy;
  rp.logprobs = params.logprobs;
  if (!params.kv_policy.empty()) rp.kv_policy = params.kv_policy;
  if (!params.kv_budget.empty()) {
    PARETO_TRY(rp.kv_budget, kv::parse_kv_budget(params.kv_budget));
  }
  if (params.kv_policy.empty() && !params.kv_budget.empty()) {
    return make_error("kv budget '", params.kv_budget,
                      "' needs a kv policy to choose what to evict (window, h2o, snapkv)");
  }
  if (rp.kv_policy != "full" && params.kv_budget.empty()) {
    return make_error("kv policy '", rp.kv_policy, "' needs a budget (kv_budget, e.g. 20%)");
  }
  engine::RequestCallbacks callbacks;
  callbacks.on_token = std::move(on_text);
  if (on_logprob) {
    callbacks.on_logprob = [cb = std::move(on_logprob)](const sampling::TokenLogprobs& lp) {
      cb(TokenLogprob{lp.token, lp.logprob, lp.top});
    };
  }
  if (on_done) {
    callbacks.on_done = [done = std::move(on_done)](const engine::RequestResult& r) {
      done(to_generation(r));
    };
  }
  return scheduler_->submit(std::move(prompt_tokens), rp, std::move(callbacks));
}

void Engine::cancel(uint64_t id) {
  if (scheduler_) scheduler_->cancel(id);
}

Status Engine::step() {
  if (!scheduler_) return ok();
  std::lock_guard<std::mutex> lock(step_lock_->mutex);
  return scheduler_->step();
}

bool Engine::has_work() const {
  return scheduler_ && scheduler_->has_work();
}

EngineCounters Engine::counters() const {
  EngineCounters c;
  if (!scheduler_) return c;
  const engine::SchedulerCounters s = scheduler_->counters();
  c.running = s.running;
  c.waiting = s.waiting;
  c.kv_pages_in_use = s.kv_pages_in_use;
  c.kv_pages_total = scheduler_->kv_pool().options().max_pages;
  c.kv_pages_cached = s.kv_pages_cached;
  c.prefix_cache_hit_tokens = s.prefix_cache_hit_tokens;
  c.speculation_steps_drafted = s.speculation_steps_drafted;
  c.speculation_steps_plain = s.speculation_steps_plain;
  c.speculation_steps_explored = s.speculation_steps_explored;
  c.kv_bytes_in_use = s.kv_bytes_in_use;
  c.prompt_tokens = s.prompt_tokens;
  c.generated_tokens = s.generated_tokens;
  c.kv_evicted_entries = s.kv_evicted_entries;
  c.kv_evicted_bytes = s.kv_evicted_bytes;
  return c;
}

Result<Generation> Engine::generate(std::string_view prompt, const GenerateParams& params,
                                    const StreamCallback& on_text) {
  return generate_from_tokens(tokenize(prompt, params.add_bos), params, on_text);
}

Result<Generation> Engine::generate_from_tokens(std::vector<int32_t> prompt_tokens,
                                                const GenerateParams& params,
                                                const StreamCallback& on_text) {
  // The result is written by whichever thread runs the step that ends the request; `done` is read
  // under the step lock, which that thread holds while it writes.
  std::optional<Result<Generation>> result;
  PARETO_TRY(const uint64_t id, submit(std::move(prompt_tokens), params, on_text,
                                       [&result](const Result<Generation>& r) { result = r; }));
  (void)id;
  while (true) {
    std::lock_guard<std::mutex> lock(step_lock_->mutex);
    if (result) break;
    PARETO_RETURN_IF_ERROR(scheduler_->step());
  }
  return std::move(*result);
}

}  // namespace pareto
