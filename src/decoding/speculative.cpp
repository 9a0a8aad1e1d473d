#include "decoding/speculative.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace pareto::decoding {
namespace {

using Clock = std::chrono::steady_clock;

double prob_of(const sampling::Candidates& c, int32_t id) {
  for (const sampling::Candidate& x : c.items) {
    if (x.id == id) return x.prob;
  }
  return 0.0;
}

}  // namespace

int32_t verify_draft_candidates(sampling::SamplerChain& chain, const sampling::Candidates& p,
                                std::span<const int32_t> candidates, const sampling::Candidates& q,
                                int& kept, VerifyScratch& scratch) {
  std::vector<float>& q_by_id = scratch.q_by_id;
  for (const sampling::Candidate& c : q.items) {
    if (static_cast<size_t>(c.id) >= q_by_id.size()) q_by_id.resize(static_cast<size_t>(c.id) + 1);
    q_by_id[static_cast<size_t>(c.id)] = c.prob;
  }
  const auto q_of = [&](int32_t id) {
    return static_cast<size_t>(id) < q_by_id.size() ? double{q_by_id[static_cast<size_t>(id)]}
                                                    : 0.0;
  };
  // p_now[j]: the current distribution's probability of p.items[j] (tokens outside p have 0).
  std::vector<double>& p_now = scratch.p_now;
  p_now.resize(p.items.size());
  for (size_t j = 0; j < p.items.size(); ++j) p_now[j] = p.items[j].prob;
  kept = -1;
  for (size_t i = 0; i < candidates.size() && kept < 0; ++i) {
    const int32_t x = candidates[i];
    double p_x = 0;
    for (size_t j = 0; j < p.items.size(); ++j) {
      if (p.items[j].id == x) p_x = p_now[j];
    }
    const double q_x = q_of(x);
    // q_x == 0 cannot happen for a token drawn from q; treat it as a rejection.
    if (q_x > 0 && chain.uniform() < std::min(1.0, p_x / q_x)) {
      kept = static_cast<int>(i);
      break;
    }
    double sum = 0;
    for (size_t j = 0; j < p.items.size(); ++j) {
      p_now[j] = std::max(0.0, p_now[j] - q_of(p.items[j].id));
      sum += p_now[j];
    }
    if (sum <= 0) {  // p_i <= q everywhere, so p_i == q up to rounding: keep it (as q)
      for (size_t j = 0; j < p.items.size(); ++j) {
        p_now[j] = q_of(p.items[j].id);
        sum += p_now[j];
      }
    }
    for (double& v : p_now) v /= sum;
  }
  for (const sampling::Candidate& c : q.items) q_by_id[static_cast<size_t>(c.id)] = 0.0f;
  if (kept >= 0) return candidates[static_cast<size_t>(kept)];
  // As logits log(r) for pick()'s softmax.
  sampling::Candidates& residual = scratch.residual;
  residual.items.clear();
  residual.sorted = false;
  for (size_t j = 0; j < p.items.size(); ++j) {
    if (p_now[j] > 0) {
      residual.items.push_back({p.items[j].id, static_cast<float>(std::log(p_now[j])), 0.0f});
    }
  }
  return chain.pick(residual);
}

int32_t verify_draft_token(sampling::SamplerChain& chain, const sampling::Candidates& p,
                           int32_t draft, const sampling::Candidates* q, bool& accepted,
                           VerifyScratch& scratch) {
  const double p_x = prob_of(p, draft);
  const double q_x = q ? prob_of(*q, draft) : 1.0;
  // q_x == 0 cannot happen for a token drawn from q; treat it as a rejection.
  accepted = q_x > 0 && chain.uniform() < std::min(1.0, p_x / q_x);
  if (accepted) return draft;
  // Residual norm(max(0, p - q)), as logits log(r) for pick()'s softmax.
  std::vector<float>& q_by_id = scratch.q_by_id;
  if (q) {
    for (const sampling::Candidate& c : q->items) {
      if (static_cast<size_t>(c.id) >= q_by_id.size())
        q_by_id.resize(static_cast<size_t>(c.id) + 1);
      q_by_id[static_cast<size_t>(c.id)] = c.prob;
    }
  }
  sampling::Candidates& residual = scratch.residual;
  residual.items.clear();
  residual.sorted = false;
  for (const sampling::Candidate& c : p.items) {
    double q_c = c.id == draft ? 1.0 : 0.0;
    if (q)
      q_c = static_cast<size_t>(c.id) < q_by_id.size() ? q_by_id[static_cast<size_t>(c.id)] : 0.0;
    const double r = static_cast<double>(c.prob) - q_c;
    if (r > 0) residual.items.push_back({c.id, static_cast<float>(std::log(r)), 0.0f});
  }
  if (q) {
    for (const sampling::Candidate& c : q->items) q_by_id[static_cast<size_t>(c.id)] = 0.0f;
  }
  if (residual.items.empty()) {  // p == q up to rounding: the residual is undefined; p is exact
    residual.items = p.items;
    for (auto& c : residual.items) c.logit = std::log(std::max(c.prob, 1e-30f));
  }
  return chain.pick(residual);
}

SpeculativeStrategy::SpeculativeStrategy(std::unique_ptr<Drafter> drafter, int max_draft)
    : drafter_(std::move(drafter)), max_draft_(max_draft) {
  PARETO_CHECK(drafter_ != nullptr && max_draft_ >= 0);
}

void SpeculativeStrategy::propose(const SequenceState& seq, int max_entries,
                                  std::vector<model::BatchEntry>& entries) {
  PARETO_CHECK(max_entries >= 1 && !seq.tokens.empty());
  PARETO_CHECK_MSG(seq.cache.n_tokens() + 1 == static_cast<int>(seq.tokens.size()),
                   "SpeculativeStrategy::propose: the cache must hold every token but the pending");
  const Clock::time_point start = Clock::now();
  draft_.clear();
  drafter_->draft(seq, std::min(max_draft_, max_entries - 1), draft_);
  PARETO_CHECK(static_cast<int>(draft_.tokens.size()) <= std::min(max_draft_, max_entries - 1));
  PARETO_CHECK(draft_.q.empty() || draft_.q.size() == draft_.tokens.size());
  // A tree: greedy (no q) or sampled (q per node: the distribution at its parent it was drawn
  // from).
  PARETO_CHECK(draft_.parents.empty() || (draft_.parents.size() == draft_.tokens.size() &&
                                          draft_.q.empty() == seq.sampler.greedy()));
  const auto pending = static_cast<int32_t>(seq.tokens.size()) - 1;
  if (draft_.parents.empty()) {
    entries.push_back({seq.tokens.back(), pending, 0, true});
    for (size_t i = 0; i < draft_.tokens.size(); ++i) {
      entries.push_back({draft_.tokens[i], pending + 1 + static_cast<int32_t>(i), 0, true});
    }
  } else {
    // A tree: the pending token is the root (it continues the cache); node i sits one position
    // after its parent. Parents are batch indices.
    const auto root = static_cast<int32_t>(entries.size());
    entries.push_back({seq.tokens.back(), pending, 0, true, model::kTreeRoot});
    for (size_t i = 0; i < draft_.tokens.size(); ++i) {
      const int32_t parent = draft_.parents[i];
      PARETO_CHECK(parent < static_cast<int32_t>(i));
      const int32_t parent_entry = parent < 0 ? root : root + 1 + parent;
      entries.push_back({draft_.tokens[i], entries[static_cast<size_t>(parent_entry)].position + 1,
                         0, true, parent_entry});
    }
  }
  proposed_at_ = Clock::now();
  stats_.draft_seconds += std::chrono::duration<double>(proposed_at_ - start).count();
}

int SpeculativeStrategy::accept(SequenceState& seq, std::span<const float> logits) {
  const Clock::time_point start = Clock::now();
  const auto n_vocab = static_cast<size_t>(seq.n_vocab);
  PARETO_CHECK(n_vocab > 0 && logits.size() % n_vocab == 0);
  const size_t rows = logits.size() / n_vocab;
  const size_t n_draft = draft_.tokens.size();
  // The first call after the prompt has the last prompt token's row only (nothing proposed).
  const bool after_prompt = !verified_once_;
  PARETO_CHECK(rows == n_draft + 1 || (after_prompt && rows == 1 && n_draft == 0));
  double verify_seconds = 0;
  if (!after_prompt) {
    verify_seconds = seq.forward_seconds > 0
                         ? seq.forward_seconds
                         : std::chrono::duration<double>(start - proposed_at_).count();
    ++stats_.steps;
    stats_.verify_seconds += verify_seconds;
  }
  verified_once_ = true;
  if (!draft_.parents.empty()) {
    const int appended = accept_tree(seq, logits);
    const Clock::time_point drafter_start = Clock::now();
    drafter_->verified(seq, {static_cast<int>(n_draft), appended - 1, verify_seconds});
    stats_.draft_seconds += std::chrono::duration<double>(Clock::now() - drafter_start).count();
    draft_.clear();
    return appended;
  }
  const bool greedy = seq.sampler.greedy();
  int appended = 0;
  int n_accepted = 0;
  for (size_t i = 0; i < rows; ++i) {
    seq.sampler.process(logits.subspan(i * n_vocab, n_vocab), seq.tokens, target_);
    int32_t token = 0;
    bool accepted = false;
    if (i >= n_draft) {
      token = seq.sampler.pick(target_);  // the row after the last draft: the target's own token
    } else if (greedy) {
      token = target_.items.front().id;
      accepted = token == draft_.tokens[i];
    } else {
      token = verify_draft_token(seq.sampler, target_, draft_.tokens[i],
                                 draft_.q.empty() ? nullptr : &draft_.q[i], accepted, scratch_);
    }
    seq.tokens.push_back(token);
    ++appended;
    if (!accepted) break;  // later rows saw a rejected token
    ++n_accepted;
  }
  // The cache holds the pending token and every draft token; keep those before the new pending.
  if (static_cast<size_t>(appended) < rows) {
    seq.cache.truncate(static_cast<int>(seq.tokens.size()) - 1);
  }
  stats_.drafted += static_cast<int64_t>(n_draft);
  stats_.accepted += n_accepted;
  if (stats_.drafted_at.size() < n_draft) {
    stats_.drafted_at.resize(n_draft);
    stats_.accepted_at.resize(n_draft);
  }
  for (size_t i = 0; i < n_draft; ++i) {
    ++stats_.drafted_at[i];
    if (static_cast<int>(i) < n_accepted) ++stats_.accepted_at[i];
  }
  const Clock::time_point drafter_start = Clock::now();
  if (!after_prompt) {
    // The last kept entry is row n_accepted: the pending token's, then each accepted draft's.
    std::span<const float> residuals;
    if (!seq.residuals.empty() && seq.residuals.size() % rows == 0) {
      const size_t per_row = seq.residuals.size() / rows;
      residuals = seq.residuals.subspan(static_cast<size_t>(n_accepted) * per_row, per_row);
    }
    drafter_->verified(seq, {static_cast<int>(n_draft), n_accepted, verify_seconds, residuals});
  }
  stats_.draft_seconds += std::chrono::duration<double>(Clock::now() - drafter_start).count();
  draft_.clear();
  return appended;
}

int SpeculativeStrategy::accept_tree(SequenceState& seq, std::span<const float> logits) {
  const auto n_vocab = static_cast<size_t>(seq.n_vocab);
  const size_t n_draft = draft_.tokens.size();
  // Walk from the root: the target's greedy token after the current node; if a child of the node
  // drafted that token, the walk goes on from the child (row i + 1 is node i's).
  kept_.assign(1, 0);
  int appended = 0;
  int32_t node = -1;
  std::vector<int>& depth_of = depth_of_;
  depth_of.resize(n_draft);
  for (size_t i = 0; i < n_draft; ++i) {
    const int32_t p = draft_.parents[i];
    depth_of[i] = p < 0 ? 1 : depth_of[static_cast<size_t>(p)] + 1;
  }
  const bool greedy = seq.sampler.greedy();
  while (true) {
    const size_t row = node < 0 ? 0 : static_cast<size_t>(node) + 1;
    seq.sampler.process(logits.subspan(row * n_vocab, n_vocab), seq.tokens, target_);
    int32_t token = 0;
    int32_t next = -1;
    if (greedy) {
      token = target_.items.front().id;
      for (size_t i = 0; i < n_draft; ++i) {
        if (draft_.parents[i] == node && draft_.tokens[i] == token) {
          next = static_cast<int32_t>(i);
          break;
        }
      }
    } else {
      // The node's children in draw order; they share the q they were drawn from.
      children_.clear();
      child_tokens_.clear();
      for (size_t i = 0; i < n_draft; ++i) {
        if (draft_.parents[i] != node) continue;
        children_.push_back(static_cast<int32_t>(i));
        child_tokens_.push_back(draft_.tokens[i]);
      }
      if (children_.empty()) {
        token = seq.sampler.pick(target_);
      } else {
        int kept = -1;
        token = verify_draft_candidates(seq.sampler, target_, child_tokens_,
                                        draft_.q[static_cast<size_t>(children_.front())], kept,
                                        scratch_);
        if (kept >= 0) next = children_[static_cast<size_t>(kept)];
      }
    }
    seq.tokens.push_back(token);
    ++appended;
    if (next < 0) break;
    node = next;
    kept_.push_back(node + 1);
  }
  // Statistics by depth: nodes drafted at each depth, and the depths the path reached.
  const int accepted = appended - 1;
  stats_.drafted += static_cast<int64_t>(n_draft);
  stats_.accepted += accepted;
  for (size_t i = 0; i < n_draft; ++i) {
    const auto d = static_cast<size_t>(depth_of[i] - 1);
    if (stats_.drafted_at.size() <= d) {
      stats_.drafted_at.resize(d + 1);
      stats_.accepted_at.resize(d + 1);
    }
    ++stats_.drafted_at[d];
  }
  for (int d = 0; d < accepted; ++d) ++stats_.accepted_at[static_cast<size_t>(d)];
  // The cache holds the tree's entries last in each (layer, head), in batch order: erase the
  // ones off the path, then drop what lies past the new pending token.
  erase_.clear();
  for (int j = 1, k = 1; j <= static_cast<int>(n_draft); ++j) {
    if (k < static_cast<int>(kept_.size()) && kept_[static_cast<size_t>(k)] == j) {
      ++k;
    } else {
      erase_.push_back(j);
    }
  }
  if (!erase_.empty()) {
    const kv::KvShape shape = seq.cache.shape();
    std::vector<int>& indices = erase_indices_;
    indices.resize(erase_.size());
    for (int l = 0; l < shape.n_layers; ++l) {
      for (int h = 0; h < shape.n_kv_heads; ++h) {
        const int first = seq.cache.length(l, h) - static_cast<int>(n_draft) - 1;
        PARETO_CHECK(first >= 0);
        for (size_t e = 0; e < erase_.size(); ++e) indices[e] = first + erase_[e];
        seq.cache.erase(l, h, indices);
      }
    }
  }
  seq.cache.truncate(static_cast<int>(seq.tokens.size()) - 1);
  return appended;
}

}  // namespace pareto::decoding
