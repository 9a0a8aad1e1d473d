#include "decoding/draft_tree.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace pareto::decoding {
namespace {

constexpr double kStartMinPath = 0.05;  // until two verifications are measured

}  // namespace

double DraftTreeDrafter::log_acceptance(int rank) const {
  // Prior: 8 observations at 0.7 for the top child, 0.1 for the others.
  const double prior = rank == 0 ? 0.7 : 0.1;
  const auto r = static_cast<size_t>(rank);
  return std::log((taken_[r] + 8 * prior) / (reached_[r] + 8));
}

double DraftTreeDrafter::min_path_probability() const {
  if (!cost_.ready()) return kStartMinPath;
  const double step = cost_.step();
  return step > 0 ? std::clamp(cost_.per_entry() / step, 1e-3, 0.9) : kStartMinPath;
}

void DraftTreeDrafter::draft_sampled(const SequenceState& seq, int max_tokens, Draft& out) {
  if (!seeded_) {
    rng_.seed(seq.seed ^ 0x7f4a7c159e3779b9ULL);
    seeded_ = true;
  }
  const auto pending = static_cast<int32_t>(seq.tokens.size()) - 1;
  const int depth_max =
      std::min({kMaxDepth, draft_.resources().context_length - (pending + 1), max_tokens});
  const auto n_vocab = static_cast<size_t>(seq.n_vocab);
  out.clear();
  last_tokens_.clear();  // verified() learns acceptance by rank from greedy trees only
  frontier_.assign(1, -1);
  depth_.clear();
  std::span<const float> rows = draft_.logits().last(n_vocab);
  for (int level = 1; level <= depth_max; ++level) {
    const int width = level == 1 ? kWidth : 1;
    const size_t frontier_size = frontier_.size();
    for (size_t f = 0; f < frontier_size; ++f) {
      // The processors' history: the sequence, then the path to this node.
      history_.assign(seq.tokens.begin(), seq.tokens.end());
      const size_t path_start = history_.size();
      for (int32_t n = frontier_[f]; n >= 0; n = out.parents[static_cast<size_t>(n)]) {
        history_.push_back(out.tokens[static_cast<size_t>(n)]);
      }
      std::reverse(history_.begin() + static_cast<std::ptrdiff_t>(path_start), history_.end());
      seq.sampler.process(rows.subspan(f * n_vocab, n_vocab), history_, q_);
      for (int k = 0; k < width && out.tokens.size() < static_cast<size_t>(max_tokens); ++k) {
        const sampling::Candidate* drawn = draw_from(q_, rng_);
        const int32_t token = drawn != nullptr ? drawn->id : q_.items.back().id;
        frontier_.push_back(static_cast<int32_t>(out.tokens.size()));
        out.tokens.push_back(token);
        out.parents.push_back(frontier_[f]);
        out.q.push_back(q_);
        depth_.push_back(level);
      }
    }
    frontier_.erase(frontier_.begin(),
                    frontier_.begin() + static_cast<std::ptrdiff_t>(frontier_size));
    // Only the first-drawn child grows on: one deep chain with kWidth - 1 alternatives at the
    // root (measured: deeper drafts pay more than wider ones on the pycode pair).
    if (frontier_.size() > 1) frontier_.erase(frontier_.begin() + 1, frontier_.end());
    if (frontier_.empty() || level == depth_max ||
        out.tokens.size() >= static_cast<size_t>(max_tokens)) {
      break;
    }
    // The draft evaluates the tree so far; the new frontier's rows come back in node order.
    entries_.clear();
    size_t next_frontier = 0;
    for (size_t i = 0; i < out.tokens.size(); ++i) {
      const bool is_frontier =
          next_frontier < frontier_.size() && frontier_[next_frontier] == static_cast<int32_t>(i);
      if (is_frontier) ++next_frontier;
      const int32_t parent = out.parents[i];
      entries_.push_back({out.tokens[i], pending + depth_[i], 0, is_frontier,
                          parent < 0 ? model::kTreeRoot : parent});
    }
    if (!draft_.evaluate_and_drop(entries_)) break;
    rows = draft_.logits();
  }
  last_pending_ = seq.tokens.size() - 1;
}

void DraftTreeDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  const auto pending = static_cast<int32_t>(seq.tokens.size()) - 1;
  const int depth_room = draft_.resources().context_length - (pending + 1);
  if (max_tokens <= 0 || depth_room <= 0) return;
  if (!draft_.sync(seq.tokens)) return;
  if (!seq.sampler.greedy()) {
    draft_sampled(seq, max_tokens, out);
    return;
  }
  const int width = kWidth;
  const double min_log_p = std::log(min_path_probability());
  const auto n_vocab = static_cast<size_t>(seq.n_vocab);
  const int depth_max = std::min({kMaxDepth, depth_room, max_tokens});
  // 1. Grow: each level, the `width` most probable children (by path probability) of the
  //    frontier's nodes join; the draft evaluates the tree so far to expand the next level.
  grown_tokens_.clear();
  grown_parents_.clear();
  grown_ranks_.clear();
  node_log_p_.clear();
  depth_.clear();
  frontier_.assign(1, -1);  // the pending token; its row is the sync's last logits
  std::span<const float> rows = draft_.logits().last(n_vocab);
  for (int level = 1; level <= depth_max; ++level) {
    candidates_.clear();
    for (size_t f = 0; f < frontier_.size(); ++f) {
      const std::span<const float> row = rows.subspan(f * n_vocab, n_vocab);
      top_.clear();
      for (size_t t = 0; t < n_vocab; ++t) {
        top_.push_back({row[t], static_cast<int32_t>(t)});
        std::push_heap(top_.begin(), top_.end(), std::greater<>());
        if (top_.size() > static_cast<size_t>(width)) {
          std::pop_heap(top_.begin(), top_.end(), std::greater<>());
          top_.pop_back();
        }
      }
      const int32_t parent = frontier_[f];
      const double base = parent < 0 ? 0.0 : node_log_p_[static_cast<size_t>(parent)];
      std::sort(top_.begin(), top_.end(), [](const auto& x, const auto& y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
      });
      for (size_t r = 0; r < top_.size(); ++r) {
        const auto rank = static_cast<int32_t>(r);
        candidates_.push_back({base + log_acceptance(rank), parent, top_[r].second, rank});
      }
    }
    std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& x, const Candidate& y) {
      return x.log_p > y.log_p || (x.log_p == y.log_p && x.token < y.token);
    });
    // A node below the budget-th best value so far cannot make the final cut, nor can its
    // descendants (values only fall along a path): it is neither added nor expanded.
    double cut = min_log_p;
    if (grown_tokens_.size() >= static_cast<size_t>(max_tokens)) {
      best_.assign(node_log_p_.begin(), node_log_p_.end());
      std::nth_element(best_.begin(), best_.begin() + (max_tokens - 1), best_.end(),
                       std::greater<>());
      cut = std::max(cut, best_[static_cast<size_t>(max_tokens - 1)]);
    }
    frontier_.clear();
    for (size_t c = 0; c < candidates_.size() && c < static_cast<size_t>(width); ++c) {
      if (candidates_[c].log_p <= cut && !grown_tokens_.empty()) break;
      frontier_.push_back(static_cast<int32_t>(grown_tokens_.size()));
      grown_tokens_.push_back(candidates_[c].token);
      grown_parents_.push_back(candidates_[c].parent);
      grown_ranks_.push_back(candidates_[c].rank);
      node_log_p_.push_back(candidates_[c].log_p);
      depth_.push_back(level);
    }
    if (frontier_.empty() || level == depth_max) break;
    entries_.clear();
    size_t next_frontier = 0;
    for (size_t i = 0; i < grown_tokens_.size(); ++i) {
      const bool is_frontier =
          next_frontier < frontier_.size() && frontier_[next_frontier] == static_cast<int32_t>(i);
      if (is_frontier) ++next_frontier;
      const int32_t parent = grown_parents_[i];
      entries_.push_back({grown_tokens_[i], pending + depth_[i], 0, is_frontier,
                          parent < 0 ? model::kTreeRoot : parent});
    }
    if (!draft_.evaluate_and_drop(entries_)) break;
    rows = draft_.logits();
  }
  // 2. Keep the `max_tokens` nodes of highest path probability worth verifying (EAGLE-2's
  //    re-ranking): a node's path probability is at most its parent's, so ancestors stay in.
  order_.resize(grown_tokens_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int32_t>(i);
  std::stable_sort(order_.begin(), order_.end(), [&](int32_t x, int32_t y) {
    return node_log_p_[static_cast<size_t>(x)] > node_log_p_[static_cast<size_t>(y)];
  });
  keep_.assign(grown_tokens_.size(), -1);
  size_t n_keep = 0;
  for (int32_t i : order_) {
    if (n_keep >= static_cast<size_t>(max_tokens)) break;
    if (n_keep > 0 && node_log_p_[static_cast<size_t>(i)] < min_log_p) break;
    const int32_t parent = grown_parents_[static_cast<size_t>(i)];
    if (parent >= 0 && keep_[static_cast<size_t>(parent)] < 0) continue;  // a tie broke ancestry
    keep_[static_cast<size_t>(i)] = 0;
    ++n_keep;
  }
  // Kept nodes in growth order (parents before children), renumbered.
  out.tokens.clear();
  out.parents.clear();
  for (size_t i = 0; i < grown_tokens_.size(); ++i) {
    if (keep_[i] < 0) continue;
    keep_[i] = static_cast<int32_t>(out.tokens.size());
    const int32_t parent = grown_parents_[i];
    out.tokens.push_back(grown_tokens_[i]);
    out.parents.push_back(parent < 0 ? -1 : keep_[static_cast<size_t>(parent)]);
  }
  last_tokens_ = out.tokens;
  last_parents_ = out.parents;
  last_ranks_.clear();
  for (size_t i = 0; i < grown_tokens_.size(); ++i) {
    if (keep_[i] >= 0) last_ranks_.push_back(grown_ranks_[i]);
  }
  last_pending_ = seq.tokens.size() - 1;
}

void DraftTreeDrafter::verified(const SequenceState& seq, const Verification& v) {
  if (v.drafted == 0) return;
  // Replay the walk over the last tree with the tokens accepted since its pending token: every
  // child of a reached node counts as reached at its rank, the one the walk took as taken.
  int32_t node = -1;
  for (size_t at = last_pending_ + 1; at <= seq.tokens.size(); ++at) {
    int32_t next = -1;
    for (size_t i = 0; i < last_tokens_.size(); ++i) {
      if (last_parents_[i] != node) continue;
      const auto rank = static_cast<size_t>(last_ranks_[i]);
      reached_[rank] += 1;
      if (at < seq.tokens.size() && last_tokens_[i] == seq.tokens[at] && next < 0) {
        taken_[rank] += 1;
        next = static_cast<int32_t>(i);
      }
    }
    if (next < 0) break;
    node = next;
  }
  cost_.add(v.drafted + 1, v.verify_seconds);
}

}  // namespace pareto::decoding
