#include "decoding/draft_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "base/check.h"

namespace pareto::decoding {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kDecay = 0.9;  // weight of the past in the adaptive estimates, per verification

// The probability softmax(logits) gives its argmax (the greedy draft's own confidence).
double argmax_probability(std::span<const float> logits) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  return 1.0 / sum;
}

}  // namespace

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
  if (!r_.model->forward(entries_, caches, logits_, workspace_, *r_.pool, forward_)) {
    return false;  // out of pages or context: no draft this step (plain decoding goes on)
  }
  fed_.insert(fed_.end(), tokens.begin(), tokens.end());
  return true;
}

bool DraftModelCache::sync(std::span<const int32_t> tokens) {
  PARETO_CHECK(!tokens.empty());
  size_t keep = 0;
  while (keep < fed_.size() && keep < tokens.size() && fed_[keep] == tokens[keep]) ++keep;
  keep = std::min(keep, tokens.size() - 1);
  cache_.truncate(static_cast<int>(keep));
  fed_.resize(keep);
  return feed(tokens.subspan(keep));
}

bool DraftModelCache::evaluate_and_drop(std::span<const model::BatchEntry> entries) {
  kv::KvCache* caches[] = {&cache_};
  const bool ok =
      r_.model->forward(entries, caches, logits_, workspace_, *r_.pool, r_.forward).has_value();
  cache_.truncate(held());
  return ok;
}

DraftModelDrafter::DraftModelDrafter(const DraftModelResources& resources, bool adaptive)
    : draft_(resources), adaptive_(adaptive) {}

DraftModelDrafter::DraftModelDrafter(const DraftModelResources& target,
                                     std::vector<uint8_t> skip_layers)
    : draft_(target, std::move(skip_layers)), adaptive_(true), layer_skip_(true) {}

bool DraftModelDrafter::keep_drafting(double p_all_pass) const {
  if (!adaptive_ || !cost_.ready()) return true;  // measure a few fixed-length steps first
  return p_all_pass * cost_.step() > draft_token_seconds_ + cost_.per_entry();
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
  if (!draft_.sync(seq.tokens)) return;
  history_.assign(seq.tokens.begin(), seq.tokens.end());
  confidence_.clear();
  const bool greedy = seq.sampler.greedy();
  double p_all_pass = 1.0;
  const double calibration = (accepted_ + 1.0) / (predicted_ + 1.0);
  for (int i = 0; i < max_tokens; ++i) {
    if (i > 0) {
      const Clock::time_point t0 = Clock::now();
      const int32_t last = out.tokens.back();
      if (!draft_.feed(std::span<const int32_t>(&last, 1))) break;
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      draft_token_seconds_ =
          draft_token_seconds_ == 0 ? s : kDecay * draft_token_seconds_ + (1 - kDecay) * s;
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

void DraftModelDrafter::verified(const SequenceState& seq, const Verification& v) {
  (void)seq;
  if (!adaptive_ || v.drafted == 0) return;
  cost_.add(v.drafted + 1, v.verify_seconds);
  // Calibration over the positions the verification reached (accepted ones and the first miss).
  const int reached = std::min(v.drafted, v.accepted + 1);
  double predicted = 0;
  for (int i = 0; i < reached && i < static_cast<int>(confidence_.size()); ++i) {
    predicted += confidence_[static_cast<size_t>(i)];
  }
  predicted_ = kDecay * predicted_ + predicted;
  accepted_ = kDecay * accepted_ + v.accepted;
}

}  // namespace pareto::decoding
