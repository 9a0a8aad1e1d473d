#include "decoding/draft_model.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>

#include "base/check.h"
#include "decoding/layer_selection.h"

namespace pareto::decoding {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kDecay = 0.9;  // weight of the past in the adaptive estimates, per verification

// exp(x) for x <= 0, to a few parts in 10^7 (2^n e^r with |r| <= ln2 / 2 and a degree-6 Taylor
// polynomial for e^r); below -87 (-inf too), exp(-87). Branch-free, so a loop over it vectorizes:
// libm's double exp over the vocabulary took half of a greedy draft token's time on the pycode
// draft.
inline float exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693145752f, kLn2Lo = 1.42860677e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  // x = max(x, -87) on the bits (for x <= 0 a larger magnitude is a larger unsigned integer; -inf
  // too): a float comparison may trap, and GCC then does not vectorize the select. A pattern with
  // the sign bit clear (+0, or a NaN from non-finite logits) counts as 0.
  constexpr uint32_t kMinus87 = 0xC2AE0000u;
  const auto b = std::bit_cast<uint32_t>(x);
  const uint32_t negative = 0u - (b >> 31);  // all ones where the sign bit is set
  x = std::bit_cast<float>((b > kMinus87 ? kMinus87 : b) & negative);
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f + r * (1.0f / 6);
  p = 1.0f + r * (1.0f / 5) * p;
  p = 1.0f + r * (1.0f / 4) * p;
  p = 1.0f + r * (1.0f / 3) * p;
  p = 1.0f + r * (1.0f / 2) * p;
  p = 1.0f + r * p;
  const auto bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;  // 2^n, n >= -126
  return p * std::bit_cast<float>(bits);
}

}  // namespace

double argmax_probability(std::span<const float> logits) {
  const float max = *std::max_element(logits.begin(), logits.end());
  constexpr size_t kLanes = 16;  // partial sums in lanes: the loop vectorizes without reordering
  float lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= logits.size(); i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) lanes[j] += exp_nonpositive(logits[i + j] - max);
  }
  double sum = 0;
  for (; i < logits.size(); ++i) sum += exp_nonpositive(logits[i] - max);
  for (float l : lanes) sum += l;
  return 1.0 / sum;
}

DraftModelCache::DraftModelCache(const DraftModelResources& resources,
                                 std::vector<uint8_t> skip_layers)
    : r_(resources), skip_(std::move(skip_layers)), forward_(resources.forward) {
  PARETO_CHECK(r_.model != nullptr && r_.kv_pool != nullptr && r_.pool != nullptr);
  forward_.skip_layers = skip_;
  cache_ = kv::KvCache(r_.kv_pool, r_.context_length);
}

bool DraftModelCache::feed(std::span<const int32_t> tokens) {
  entries_.clear();
  const auto start = static_cast<int32_t>(fed_.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    entries_.push_back({tokens[i], start + static_cast<int32_t>(i), 0, i + 1 == tokens.size()});
  }
  kv::KvCache* caches[] = {&cache_};
  ThreadPool& pool =
      r_.batch_pool != nullptr && tokens.size() >= r_.kBatchPoolEntries ? *r_.batch_pool : *r_.pool;
  if (!r_.model->forward(entries_, caches, logits_, workspace_, pool, forward_)) {
    return false;  // out of pages or context: no draft this step (plain decoding goes on)
  }
  fed_.insert(fed_.end(), tokens.begin(), tokens.end());
  return true;
}

bool DraftModelCache::sync(std::span<const int32_t> tokens) {
  PARETO_CHECK(!tokens.empty());
  // The longest prefix held, but always the pending token fed (its logits start the draft).
  const size_t keep =
      std::min(tokens.size() - static_cast<size_t>(behind(tokens)), tokens.size() - 1);
  cache_.truncate(static_cast<int>(keep));
  fed_.resize(keep);
  return feed(tokens.subspan(keep));
}

bool DraftModelCache::sync_on(const kv::KvCache& target, std::span<const int32_t> tokens) {
  const int verified = target.n_tokens();
  PARETO_CHECK(verified < static_cast<int>(tokens.size()));
  cache_ = target.fork();
  fed_.assign(tokens.begin(), tokens.begin() + verified);
  return feed(tokens.subspan(static_cast<size_t>(verified)));
}

int DraftModelCache::behind(std::span<const int32_t> tokens) const {
  size_t same = 0;
  while (same < fed_.size() && same < tokens.size() && fed_[same] == tokens[same]) ++same;
  return static_cast<int>(tokens.size() - same);
}

double DraftModelCache::catch_up(std::span<const int32_t> tokens) {
  if (tokens.size() < 2 || static_cast<int>(tokens.size()) >= r_.context_length) return 0;
  const std::span<const int32_t> held = tokens.first(tokens.size() - 1);
  if (behind(held) == 0) return 0;
  const Clock::time_point start = Clock::now();
  if (!sync(held)) return 0;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void DraftModelCache::release() {
  cache_.clear();
  fed_.clear();
}

void DraftModelCache::set_skip_layers(std::span<const uint8_t> skip) {
  PARETO_CHECK(skip.size() == skip_.size() && fed_.empty());
  std::copy(skip.begin(), skip.end(), skip_.begin());  // forward_.skip_layers views skip_
}

bool DraftModelCache::evaluate_and_drop(std::span<const model::BatchEntry> entries) {
  kv::KvCache* caches[] = {&cache_};
  const bool ok =
      r_.model->forward(entries, caches, logits_, workspace_, *r_.pool, r_.forward).has_value();
  cache_.truncate(held());
  return ok;
}

DraftModelDrafter::DraftModelDrafter(const DraftModelResources& resources, bool adaptive,
                                     DraftLengthMemory* memory)
    : draft_(resources), adaptive_(adaptive) {
  stats_ = memory != nullptr ? &memory->model_stats_for(name()) : &own_;
}

DraftModelDrafter::DraftModelDrafter(const DraftModelResources& target,
                                     std::vector<uint8_t> skip_layers, DraftLengthMemory* memory)
    : draft_(target, std::move(skip_layers)), adaptive_(true), layer_skip_(true) {
  stats_ = memory != nullptr ? &memory->model_stats_for(name()) : &own_;
}

bool DraftModelDrafter::keep_drafting(double p_all_pass) const {
  const VerifyCostFit& cost = stats_->cost;
  if (!adaptive_ || !cost.ready()) return true;  // measure a few fixed-length steps first
  return p_all_pass * cost.step() > stats_->draft_token_seconds + cost.per_entry();
}

void DraftModelDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  const auto n = static_cast<int>(seq.tokens.size());
  // Room in the draft's context for the sequence and the draft's own entries.
  max_tokens = std::min(max_tokens, draft_.resources().context_length - n);
  if (max_tokens <= 0) return;
  if (!seeded_) {
    rng_.seed(seq.seed ^ 0x9e3779b97f4a7c15ULL);
    seeded_ = true;
  }
  if (layer_skip_) {
    // On a fork of the target's cache, dropped when the draft is made (the target's next
    // verification then appends to pages it alone holds).
    const bool synced = draft_.sync_on(seq.cache, seq.tokens);
    if (synced) draft_chain(seq, max_tokens, out);
    draft_.release();
    return;
  }
  if (!draft_.sync(seq.tokens)) return;
  draft_chain(seq, max_tokens, out);
}

void DraftModelDrafter::draft_chain(const SequenceState& seq, int max_tokens, Draft& out) {
  history_.assign(seq.tokens.begin(), seq.tokens.end());
  confidence_.clear();
  const bool greedy = seq.sampler.greedy();
  double p_all_pass = 1.0;
  const double calibration = (stats_->accepted + 1.0) / (stats_->predicted + 1.0);
  for (int i = 0; i < max_tokens; ++i) {
    if (i > 0) {
      const Clock::time_point t0 = Clock::now();
      const int32_t last = out.tokens.back();
      if (!draft_.feed(std::span<const int32_t>(&last, 1))) break;
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      double& mean = stats_->draft_token_seconds;
      mean = mean == 0 ? s : kDecay * mean + (1 - kDecay) * s;
    }
    const std::span<const float> row = draft_.logits().first(static_cast<size_t>(seq.n_vocab));
    seq.sampler.process(row, history_, candidates_);
    int32_t token = candidates_.items.front().id;
    double confidence = 1.0;
    if (greedy) {
      if (adaptive_) confidence = argmax_probability(row);
    } else {
      token = candidates_.items.back().id;
      if (const sampling::Candidate* c = draw_from(candidates_, rng_)) {
        token = c->id;
        confidence = c->prob;
      }
      out.q.push_back(candidates_);
    }
    out.tokens.push_back(token);
    history_.push_back(token);
    confidence_.push_back(confidence);
    p_all_pass *= std::min(1.0, calibration * confidence);
    if (!keep_drafting(p_all_pass)) break;
  }
}

int DraftModelDrafter::lag(const SequenceState& seq) const {
  if (layer_skip_) return 0;  // it drafts on a fork of the target's cache
  return draft_.behind(seq.tokens);
}

double DraftModelDrafter::catch_up(const SequenceState& seq) {
  return layer_skip_ ? 0 : draft_.catch_up(seq.tokens);  // layer skip: nothing of its own
}

void DraftModelDrafter::verified(const SequenceState& seq, const Verification& v) {
  (void)seq;
  if (layer_skip_ && !v.residuals.empty()) {
    const model::ModelConfig& c = draft_.resources().model->config();
    const std::span<const uint8_t> now = draft_.skip_layers();
    const auto n_skip = static_cast<int>(std::count(now.begin(), now.end(), uint8_t{1}));
    draft_.set_skip_layers(choose_skipped_layers(v.residuals, c.n_layers, c.dim, n_skip));
  }
  if (!adaptive_ || v.drafted == 0) return;
  stats_->cost.add(v.drafted + 1, v.verify_seconds);
  // Calibration over the positions the verification reached (accepted ones and the first miss).
  const int reached = std::min(v.drafted, v.accepted + 1);
  double predicted = 0;
  for (int i = 0; i < reached && i < static_cast<int>(confidence_.size()); ++i) {
    predicted += confidence_[static_cast<size_t>(i)];
  }
  stats_->predicted = kDecay * stats_->predicted + predicted;
  stats_->accepted = kDecay * stats_->accepted + v.accepted;
}

}  // namespace pareto::decoding
