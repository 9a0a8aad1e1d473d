#include "engine/scheduler.h"

#include <algorithm>

#include "base/check.h"

namespace pareto::engine {

using Clock = std::chrono::steady_clock;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The length of the longest suffix of `text` that is a proper prefix of one of `stops`: text that
// must be held back because the next token may complete a stop string.
size_t held_suffix(std::string_view text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& stop : stops) {
    for (size_t n = std::min(text.size(), stop.size() - 1); n > held; --n) {
      if (text.substr(text.size() - n) == std::string_view(stop).substr(0, n)) {
        held = n;
        break;
      }
    }
  }
  return held;
}

// The page pool of `m` under these options (KV types and their KIVI settings).
kv::KvPoolOptions pool_options(const model::Model& m, const SchedulerOptions& o) {
  kv::KvPoolOptions po = m.kv_pool_options(o.key_type, o.value_type, o.max_kv_pages);
  po.kivi_group = o.kivi_group;
  po.kivi_residual = o.kivi_residual;
  return po;
}

// The pool of a draft's caches (draft model, layer skip): KIVI types become F16. A KIVI cache
// quantizes a group once it ages past the recent window, so a draft that crossed such a point and
// was rolled back would leave quantized entries that a never-drafted cache holds in f16 (the
// target's cache never meets this: drafts end there, KvCache::entries_in_one_view). In F16 the
// draft's state after a rollback is that of a run that never drafted. A draft model's cache is
// small. (Layer skip drafts on a fork of the target's own cache and holds none here.)
kv::KvPoolOptions draft_pool_options(const model::Model& m, SchedulerOptions o) {
  if (kv::kivi_bits(o.key_type) > 0) o.key_type = kv::KvType::kF16;
  if (kv::kivi_bits(o.value_type) > 0) o.value_type = kv::KvType::kF16;
  return pool_options(m, o);
}

}  // namespace

struct Scheduler::Sequence {
  Sequence(uint64_t request_id, const tokenizer::Tokenizer& tok) : id(request_id), decoder(tok) {}
  uint64_t id;
  decoding::SequenceState state;
  std::unique_ptr<decoding::DecodingStrategy> strategy;
  tokenizer::IncrementalDecoder decoder;
  RequestParams params;
  RequestCallbacks callbacks;
  RequestResult result;
  std::string held;  // decoded text not yet streamed: it may be the start of a stop string
  bool prompt_done = false;
  bool finished = false;
  bool may_draft = true;                    // this step
  bool drafted_last_step = false;           // (the automatic switch's measurements)
  double propose_seconds = 0;               // its strategy's propose, this step
  kv::PrefixCache::Lease lease;             // prefix-cache blocks this sequence shares
  std::unique_ptr<kv::KvPolicy> kv_policy;  // null: no budget
  kv::KvCache parked;  // entries a policy left out of attention but keeps (RefreshKV)
  Clock::time_point submitted, admitted, first_token;
};

Scheduler::Scheduler(const model::Model& model, const tokenizer::Tokenizer& tokenizer,
                     ThreadPool& pool, const SchedulerOptions& options)
    : model_(model), tokenizer_(tokenizer), pool_(pool), options_(options) {
  kv_pool_ = std::make_shared<kv::KvPool>(pool_options(model, options));
  strategy_context_.draft_max = options.draft_max;
  strategy_context_.fixed_draft_length = options.fixed_draft_length;
  // Layer-skip drafts: the target itself, on forks of each sequence's cache (so this pool stays
  // empty; DraftModelCache needs one).
  self_draft_.model = &model;
  self_draft_.kv_pool = std::make_shared<kv::KvPool>(draft_pool_options(model, options));
  self_draft_.pool = &pool;
  self_draft_.forward = options.forward;
  self_draft_.context_length = options.context_length;
  strategy_context_.self_draft = &self_draft_;
  strategy_context_.sam_corpus = options.sam_corpus.get();
  if (options.prefix_cache) {
    prefix_cache_ = std::make_unique<kv::PrefixCache>(kv_pool_, options.prefix_cache_max_pages);
  }
  if (options.draft_model != nullptr) {
    const model::Model& d = *options.draft_model;
    draft_.model = &d;
    draft_.kv_pool = std::make_shared<kv::KvPool>(draft_pool_options(d, options));
    draft_.pool = options.draft_pool != nullptr ? options.draft_pool : &pool;
    if (draft_.pool != &pool) draft_.batch_pool = &pool;
    draft_.forward = options.forward;
    draft_.forward.kernel_path.reset();  // the draft's own order
    const int trained = d.config().context_length;
    draft_.context_length =
        options.draft_context_length > 0
            ? options.draft_context_length
            : std::min(options.context_length, trained > 0 ? trained : options.context_length);
    strategy_context_.draft_model = &draft_;
  }
}

Status check_draft_vocabulary(const tokenizer::Tokenizer& target, std::string_view target_name,
                              const tokenizer::Tokenizer& draft, std::string_view draft_name) {
  const auto differs = [&](auto&&... what) {
    return make_error_code(ErrorCode::kInvalidArgument, "draft model ", draft_name,
                           ": its vocabulary is not the target's (", target_name, "): ", what...);
  };
  if (draft.n_vocab() != target.n_vocab()) {
    return differs(draft.n_vocab(), " tokens, the target has ", target.n_vocab());
  }
  if (draft.kind() != target.kind()) {
    return differs("tokenizer '", draft.kind(), "', the target's is '", target.kind(), "'");
  }
  if (draft.bos_id() != target.bos_id() || draft.eos_id() != target.eos_id()) {
    return differs("BOS/EOS ", draft.bos_id(), "/", draft.eos_id(), ", the target's ",
                   target.bos_id(), "/", target.eos_id());
  }
  for (int32_t id = 0; id < target.n_vocab(); ++id) {
    if (draft.token_text(id) != target.token_text(id)) {
      return differs("token ", id, " is '", draft.token_text(id), "', the target's is '",
                     target.token_text(id), "'");
    }
  }
  return ok();
}

Scheduler::~Scheduler() = default;

Result<std::unique_ptr<Scheduler>> Scheduler::create(const model::Model& model,
                                                     const tokenizer::Tokenizer& tokenizer,
                                                     ThreadPool& pool,
                                                     const SchedulerOptions& options) {
  const int head_dim = model.config().head_dim;
  PARETO_RETURN_IF_ERROR(kv::check_kv_type(options.key_type, head_dim));
  PARETO_RETURN_IF_ERROR(kv::check_kv_type(options.value_type, head_dim));
  if (options.draft_model != nullptr) {
    const model::ModelConfig& d = options.draft_model->config();
    PARETO_RETURN_IF_ERROR(kv::check_kv_type(options.key_type, d.head_dim));
    PARETO_RETURN_IF_ERROR(kv::check_kv_type(options.value_type, d.head_dim));
    if (d.n_vocab != model.config().n_vocab) {
      return make_error("engine: the draft model has ", d.n_vocab, " tokens, the target ",
                        model.config().n_vocab);
    }
  }
  if (options.kivi_group < 1 || options.kivi_residual < 0) {
    return make_error("engine: KIVI group ", options.kivi_group, " must be >= 1 and residual ",
                      options.kivi_residual, " >= 0");
  }
  if (options.draft_max < 0 || options.draft_max > 64) {
    return make_error("engine: draft_max must be in [0, 64], got ", options.draft_max);
  }
  if (options.context_length <= 0 || options.max_sequences <= 0 || options.max_queue < 0 ||
      options.step_tokens <= 0 || options.max_kv_pages < 0 || options.prefix_cache_max_pages < 0) {
    return make_error("engine: context_length (", options.context_length, "), max_sequences (",
                      options.max_sequences, ") and step_tokens (", options.step_tokens,
                      ") must be positive, max_queue (", options.max_queue, ") and max_kv_pages (",
                      options.max_kv_pages, ") non-negative");
  }
  return std::unique_ptr<Scheduler>(new Scheduler(model, tokenizer, pool, options));
}

Result<uint64_t> Scheduler::submit(std::vector<int32_t> prompt, const RequestParams& params,
                                   RequestCallbacks callbacks) {
  if (prompt.empty()) return make_error("the prompt is empty (no tokens to evaluate)");
  const int n_vocab = model_.config().n_vocab;
  for (int32_t t : prompt) {
    if (t < 0 || t >= n_vocab) {
      return make_error("prompt token ", t, " is out of range (vocabulary has ", n_vocab,
                        " tokens)");
    }
  }
  if (static_cast<int64_t>(prompt.size()) > options_.context_length) {
    return make_error_code(ErrorCode::kContextOverflow, "prompt has ", prompt.size(),
                           " tokens, context is ", options_.context_length);
  }
  for (const std::string& stop : params.stop) {
    if (stop.empty()) return make_error("stop strings must not be empty");
  }
  if (params.logprobs > 20) {
    return make_error("logprobs: at most 20 alternatives per token, got ", params.logprobs);
  }
  if (params.logprobs >= 0 && params.strategy.find("tree") != std::string::npos) {
    // A token tree's logit rows follow its nodes, not the accepted tokens.
    return make_error_code(ErrorCode::kUnsupported,
                           "logprobs are not reported for the token-tree strategy (use a chain "
                           "strategy: draft, draft-adaptive, ngram, ...)");
  }
  PARETO_TRY(auto strategy, strategy_memories_.make(params.strategy, strategy_context_));
  std::unique_ptr<kv::KvPolicy> kv_policy;
  if (params.kv_policy != "full" || !params.kv_budget.is_full()) {
    const model::ModelConfig& c = model_.config();
    PARETO_RETURN_IF_ERROR(params.kv_budget.check_layers(c.n_layers));
    PARETO_TRY(kv_policy, kv::make_kv_policy(params.kv_policy,
                                             kv::KvShape{c.n_layers, c.n_kv_heads, c.head_dim,
                                                         options_.context_length}));
    if (kv_policy->min_prompt_tokens() > static_cast<int>(prompt.size())) {
      return make_error("kv policy '", params.kv_policy, "' needs a prompt of at least ",
                        kv_policy->min_prompt_tokens(),
                        " tokens (its observation window); this one has ", prompt.size());
    }
    if (params.kv_policy == "full" || params.kv_budget.is_full()) kv_policy.reset();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (static_cast<int>(queue_.size()) >= options_.max_queue) {
    return make_error_code(ErrorCode::kResourceExhausted, "request queue full (", queue_.size(),
                           " requests waiting, limit ", options_.max_queue, ")");
  }
  auto s = std::make_unique<Sequence>(next_id_++, tokenizer_);
  s->params = params;
  s->callbacks = std::move(callbacks);
  s->strategy = std::move(strategy);
  s->kv_policy = std::move(kv_policy);
  s->state.n_prompt = static_cast<int>(prompt.size());
  s->state.n_vocab = n_vocab;
  s->state.sampler = sampling::SamplerChain::from_params(params.sampling);
  s->state.seed = params.sampling.seed;
  s->result.id = s->id;
  s->result.prompt_tokens = prompt;
  // The decoder sees the prompt first so the generated text continues it exactly (no leading
  // space dropped as at the start of a text); the prompt's own text is discarded.
  for (int32_t t : prompt) s->decoder.push(t);
  s->state.tokens = std::move(prompt);
  s->submitted = Clock::now();
  const uint64_t id = s->id;
  queue_.push_back(std::move(s));
  return id;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.insert(id);
}

bool Scheduler::has_work() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !queue_.empty() || running_count_.load() > 0;
}

SchedulerCounters Scheduler::counters() const {
  SchedulerCounters c;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    c.waiting = static_cast<int>(queue_.size());
  }
  c.running = running_count_.load();
  c.kv_pages_in_use = kv_pool_->pages_in_use();
  c.kv_bytes_in_use = kv_pool_->bytes_in_use();
  c.kv_pages_cached = cached_pages_.load();
  c.prefix_cache_hit_tokens = cache_hits_.load();
  c.prompt_tokens = prompt_tokens_.load();
  c.generated_tokens = generated_tokens_.load();
  c.kv_evicted_entries = kv_evicted_.load();
  c.kv_evicted_bytes =
      c.kv_evicted_entries * static_cast<int64_t>(kv_pool_->key_bytes() + kv_pool_->value_bytes());
  c.speculation_steps_drafted = spec_steps_drafted_.load();
  c.speculation_steps_plain = spec_steps_plain_.load();
  c.speculation_steps_explored = spec_steps_explored_.load();
  return c;
}

void Scheduler::admit() {
  std::vector<std::unique_ptr<Sequence>> dropped;
  std::unordered_set<uint64_t> cancel;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel.swap(cancelled_);  // ids of requests already finished are simply dropped
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (cancel.count((*it)->id) != 0) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    while (!queue_.empty() && static_cast<int>(running_.size()) < options_.max_sequences) {
      std::unique_ptr<Sequence> s = std::move(queue_.front());
      queue_.pop_front();
      s->admitted = Clock::now();
      s->result.queue_seconds = seconds_between(s->submitted, s->admitted);
      s->state.cache = kv::KvCache(kv_pool_, options_.context_length);
      if (prefix_cache_) {
        // At least the prompt's last token is evaluated: its logits start the generation.
        s->result.cached_prompt_tokens =
            prefix_cache_->attach(s->state.tokens, s->state.n_prompt - 1, s->state.cache, s->lease);
      }
      running_.push_back(std::move(s));
    }
    running_count_ = static_cast<int>(running_.size());
  }
  for (auto& s : dropped) finish(*s, StopReason::kCancelled);
  for (auto& s : running_) {
    if (cancel.count(s->id) != 0) finish(*s, StopReason::kCancelled);
  }
}

void Scheduler::finish(Sequence& s, StopReason reason, std::optional<Error> error) {
  if (s.finished) return;
  s.finished = true;
  if (reason != StopReason::kStopString) {
    std::string rest = s.held + s.decoder.flush();
    s.held.clear();
    if (!rest.empty()) {
      s.result.text += rest;
      if (s.callbacks.on_token) s.callbacks.on_token(rest, -1);
    }
  }
  const Clock::time_point now = Clock::now();
  if (s.prompt_done) {
    s.result.prompt_seconds = seconds_between(s.admitted, s.first_token);
    s.result.decode_seconds = seconds_between(s.first_token, now);
  } else if (s.state.cache.valid()) {
    s.result.prompt_seconds = seconds_between(s.admitted, now);
  }
  s.result.stop_reason = reason;
  s.result.error = std::move(error);
  if (const decoding::SpeculationStats* spec = s.strategy->speculation()) {
    s.result.speculation = *spec;
  }
  if (prefix_cache_) {
    if (!error) prefix_cache_->insert(s.state.tokens, s.state.cache);
    prefix_cache_->release(s.lease);
  }
  s.state.cache.clear();  // pages back to the pool now, not when the sequence is destroyed
  if (s.callbacks.on_done) s.callbacks.on_done(s.result);
}

Status Scheduler::reserve(kv::KvCache& cache, int n) {
  Status reserved = cache.reserve(n);
  if (reserved || !prefix_cache_ || reserved.error().code != ErrorCode::kResourceExhausted) {
    return reserved;
  }
  // What reserve may need at most: the new pages of every slot, plus a copied shared last page.
  const int e = cache.pool().options().page_entries;
  const int64_t pages = int64_t{cache.n_slots()} * ((n + e - 1) / e + 1);
  if (!prefix_cache_->make_room(pages)) return reserved;
  return cache.reserve(n);
}

void Scheduler::apply_kv_budget(Sequence& s, int seq_index, int32_t first_position) {
  if (!s.kv_policy) return;
  step_attention_.commit(seq_index, first_position, s.state.cache);
  const int64_t evicted =
      kv::enforce_kv_budget(s.state.cache, *s.kv_policy, s.params.kv_budget, &s.parked);
  if (s.kv_policy->keeps_evicted()) return;  // parked, not freed
  s.result.kv_evicted += evicted;
  kv_evicted_ += evicted;
}

void Scheduler::before_forward(Sequence& s, bool prompt) {
  if (!s.kv_policy) return;
  if (!s.parked.valid()) s.parked = s.state.cache.empty_like();
  kv::before_kv_forward(s.state.cache, *s.kv_policy, s.parked, prompt);
}

bool Scheduler::plan_decode(Sequence& s, int& budget, bool allow_drafts) {
  decoding::SequenceState& st = s.state;
  const int room = st.cache.capacity() - (static_cast<int>(st.tokens.size()) - 1);
  if (room <= 0) {
    finish(s, StopReason::kContextFull);
    return false;
  }
  const size_t first = entries_.size();
  before_forward(s, false);
  const Clock::time_point start = Clock::now();
  // A KIVI cache quantizes between forwards: a draft stops where the next group would be, so each
  // drafted position is computed over what a forward per token would see.
  const int most = std::min({room, std::max(budget, 1), st.cache.entries_in_one_view()});
  s.strategy->propose(st, allow_drafts ? most : 1, entries_);
  s.propose_seconds = seconds_between(start, Clock::now());
  const int n = static_cast<int>(entries_.size() - first);
  PARETO_CHECK_MSG(n >= 1 && n <= room, "a strategy proposed no entries or more than allowed");
  if (auto reserved = reserve(st.cache, n); !reserved) {
    entries_.resize(first);
    finish(s, StopReason::kError, reserved.error());
    return false;
  }
  int rows = 0;
  for (size_t i = first; i < entries_.size(); ++i) {
    entries_[i].seq = static_cast<int32_t>(caches_.size());
    rows += entries_[i].logits ? 1 : 0;
  }
  caches_.push_back(&st.cache);
  planned_.push_back({&s, rows, n, true, true, entries_[first].position});
  budget -= n;
  return true;
}

bool Scheduler::plan_prompt(Sequence& s, int& budget) {
  if (budget <= 0) return false;
  decoding::SequenceState& st = s.state;
  const int start = st.cache.n_tokens();
  int n = std::min(budget, st.n_prompt - start);
  // Batch-invariant: a KIVI cache's prompt chunks stop where a group would be quantized (as
  // drafts do), so what each prompt token sees does not depend on how a busy step split the prompt.
  if (options_.forward.batch_invariant) n = std::min(n, st.cache.entries_in_one_view());
  before_forward(s, true);
  if (auto reserved = reserve(st.cache, n); !reserved) {
    finish(s, StopReason::kError, reserved.error());
    return false;
  }
  const auto seq = static_cast<int32_t>(caches_.size());
  for (int i = 0; i < n; ++i) {
    model::BatchEntry e;
    e.token = st.tokens[static_cast<size_t>(start + i)];
    e.position = start + i;
    e.seq = seq;
    e.logits = start + i == st.n_prompt - 1;
    entries_.push_back(e);
  }
  caches_.push_back(&st.cache);
  const bool completes = start + n == st.n_prompt;
  planned_.push_back({&s, completes ? 1 : 0, n, completes, false, start});
  budget -= n;
  return true;
}

void Scheduler::emit(Sequence& s, int n_new, std::span<const float> rows) {
  const std::vector<int32_t>& tokens = s.state.tokens;
  const std::vector<std::string>& stops = s.params.stop;
  const auto n_vocab = static_cast<size_t>(model_.config().n_vocab);
  const size_t first_new = tokens.size() - static_cast<size_t>(n_new);
  for (size_t i = first_new; i < tokens.size(); ++i) {
    const int32_t token = tokens[i];
    if (!s.params.ignore_eos && tokenizer_.is_end_of_generation(token)) {
      return finish(s, StopReason::kEndOfGeneration);
    }
    const size_t row = i - first_new;
    if (s.params.logprobs >= 0 && (row + 1) * n_vocab <= rows.size()) {
      sampling::TokenLogprobs lp =
          sampling::token_logprobs(rows.subspan(row * n_vocab, n_vocab), token, s.params.logprobs);
      if (s.callbacks.on_logprob) s.callbacks.on_logprob(lp);
      s.result.logprobs.push_back(std::move(lp));
    }
    s.result.tokens.push_back(token);
    ++generated_tokens_;
    s.held += s.decoder.push(token);
    std::string out;
    bool stopped = false;
    if (stops.empty()) {
      out.swap(s.held);
    } else {
      size_t at = std::string::npos;
      for (const std::string& stop : stops) at = std::min(at, s.held.find(stop));
      if (at != std::string::npos) {
        out = s.held.substr(0, at);
        s.held.clear();
        stopped = true;
      } else {
        const size_t keep = held_suffix(s.held, stops);
        out = s.held.substr(0, s.held.size() - keep);
        s.held.erase(0, s.held.size() - keep);
      }
    }
    s.result.text += out;
    const bool go_on = !s.callbacks.on_token || s.callbacks.on_token(out, token);
    if (stopped) return finish(s, StopReason::kStopString);
    if (!go_on) return finish(s, StopReason::kCallback);
    if (s.params.max_tokens >= 0 &&
        static_cast<int64_t>(s.result.tokens.size()) >= s.params.max_tokens) {
      return finish(s, StopReason::kMaxTokens);
    }
  }
}

SpeculationSwitch::Drafts Scheduler::drafts_allowed(int decoding) {
  using Drafts = SpeculationSwitch::Drafts;
  const int limit = options_.speculation_max_batch;
  if (limit == SchedulerOptions::kAutomatic) return speculation_switch_.decide(decoding);
  return limit <= 0 || decoding <= limit ? Drafts::kAll : Drafts::kNone;
}

Status Scheduler::step() {
  admit();
  entries_.clear();
  caches_.clear();
  planned_.clear();
  int budget = options_.step_tokens;
  int decoding = 0;
  int speculative = 0;
  for (auto& s : running_) {
    if (s->finished || !s->prompt_done) continue;
    ++decoding;
    speculative += s->strategy->speculation() != nullptr ? 1 : 0;
  }
  using Drafts = SpeculationSwitch::Drafts;
  const Drafts drafts = speculative > 0 ? drafts_allowed(decoding) : Drafts::kAll;
  if (speculative > 0) {
    ++(drafts == Drafts::kAll    ? spec_steps_drafted_
       : drafts == Drafts::kNone ? spec_steps_plain_
                                 : spec_steps_explored_);
  }
  // An exploration lets one speculative sequence draft, each in turn.
  const int explorer = drafts == Drafts::kOne
                           ? static_cast<int>(explore_turn_++ % static_cast<uint64_t>(speculative))
                           : -1;
  int spec_index = 0;
  for (auto& s : running_) {
    if (s->finished || !s->prompt_done) continue;
    const bool spec = s->strategy->speculation() != nullptr;
    s->may_draft = drafts == Drafts::kAll || (spec && spec_index == explorer);
    spec_index += spec ? 1 : 0;
    plan_decode(*s, budget, s->may_draft);
  }
  for (auto& s : running_) {
    if (!s->finished && !s->prompt_done) plan_prompt(*s, budget);
  }
  // Drafting steps measure what drafts cost and yield (engine/speculation_switch.h).
  const bool measure = options_.speculation_max_batch == SchedulerOptions::kAutomatic;
  int spec_sequences = 0, timed_sequences = 0;
  int64_t drafted = 0, accepted = 0;
  double draft_seconds = 0;  // the strategies' propose and accept
  Status result = ok();
  if (!entries_.empty()) {
    // Sequences with a KV policy that scores entries get the forward's attention weights.
    step_attention_.begin_step(static_cast<int>(caches_.size()));
    for (size_t i = 0; i < planned_.size(); ++i) {
      step_attention_.set(static_cast<int>(i), planned_[i].seq->kv_policy.get());
    }
    model::ForwardOptions forward_options = options_.forward;
    if (step_attention_.any()) forward_options.attention_observer = &step_attention_;
    residuals_.begin_step(planned_.size());
    for (size_t i = 0, entry = 0; i < planned_.size(); entry += planned_[i].n_entries, ++i) {
      if (planned_[i].decode && planned_[i].seq->strategy->wants_residuals()) {
        residuals_.want(i, entries_, entry, planned_[i].n_entries);
      }
    }
    forward_options.residuals = residuals_.capture();
    const Clock::time_point forward_start = Clock::now();
    const auto forwarded =
        model_.forward(entries_, caches_, logits_, workspace_, pool_, forward_options);
    const double forward_seconds = seconds_between(forward_start, Clock::now());
    if (forwarded && measure) {
      speculation_switch_.record_forward(static_cast<int>(entries_.size()), forward_seconds);
    }
    const auto n_vocab = static_cast<size_t>(model_.config().n_vocab);
    size_t row = 0;
    for (size_t index = 0; index < planned_.size(); ++index) {
      const Planned& p = planned_[index];
      Sequence& s = *p.seq;
      if (!forwarded) {
        finish(s, StopReason::kError, forwarded.error());
        continue;
      }
      const std::span<const float> rows(logits_.data() + row * n_vocab,
                                        static_cast<size_t>(p.n_rows) * n_vocab);
      row += static_cast<size_t>(p.n_rows);
      if (!s.prompt_done) {
        prompt_tokens_ += p.n_entries;
        if (!p.completes) {
          apply_kv_budget(s, static_cast<int>(index), p.first_position);
          continue;
        }
        s.prompt_done = true;
        s.first_token = Clock::now();
        if (s.params.max_tokens == 0) {
          finish(s, StopReason::kMaxTokens);
          continue;
        }
      }
      // Drafting time counts only for sequences that drafted in their previous step as well: a
      // draft model that sat out steps (or a new request's prompt) first catches up, a cost of
      // switching, not of drafting.
      const bool drafting =
          measure && p.decode && s.may_draft && s.strategy->speculation() != nullptr;
      const bool timed = drafting && s.drafted_last_step;
      s.drafted_last_step = drafting;
      const Clock::time_point accept_start = Clock::now();
      s.state.forward_seconds = forward_seconds;
      s.state.residuals = residuals_.of(index, model_.config());
      const int n_new = s.strategy->accept(s.state, rows);
      s.state.forward_seconds = 0;  // this forward's only
      s.state.residuals = {};
      apply_kv_budget(s, static_cast<int>(index), p.first_position);
      if (drafting) {
        ++spec_sequences;
        drafted += p.n_entries - 1;
        accepted += std::max(0, n_new - 1);
      }
      if (timed) {
        draft_seconds += s.propose_seconds + seconds_between(accept_start, Clock::now());
        ++timed_sequences;
      }
      emit(s, n_new, rows);
    }
    if (!forwarded) result = forwarded;
    if (forwarded) {
      speculation_switch_.record_drafts(spec_sequences, drafted, accepted);
      speculation_switch_.record_draft_time(timed_sequences, draft_seconds);
    }
  }
  std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->finished; });
  running_count_ = static_cast<int>(running_.size());
  if (prefix_cache_) {
    cached_pages_ = prefix_cache_->evictable_pages();
    cache_hits_ = prefix_cache_->hits();
  }
  return result;
}

}  // namespace pareto::engine
