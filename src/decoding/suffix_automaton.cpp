#include "decoding/suffix_automaton.h"

#include <algorithm>

#include "base/check.h"

namespace pareto::decoding {
namespace {

uint64_t edge_key(int32_t state, int32_t token) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(state)) << 32) | static_cast<uint32_t>(token);
}

}  // namespace

SuffixAutomaton::SuffixAutomaton() {
  states_.push_back(State{});  // the root: the empty string
  out_tokens_.emplace_back();
}

int32_t SuffixAutomaton::next(int32_t state, int32_t token) const {
  const auto it = edges_.find(edge_key(state, token));
  return it == edges_.end() ? -1 : it->second;
}

void SuffixAutomaton::push(int32_t token) {
  // 1. The match: extend it by `token` if the automaton (of the text so far) has that
  //    transition, else shorten it along suffix links until it does.
  while (match_ != 0 && next(match_, token) < 0) {
    match_ = states_[static_cast<size_t>(match_)].link;
    match_len_ = states_[static_cast<size_t>(match_)].len;
  }
  const auto pos = static_cast<int32_t>(text_.size());
  int32_t recorded = -1;  // the state whose last_end became pos, if any
  if (const int32_t to = next(match_, token); to >= 0) {
    match_ = to;
    ++match_len_;
    // Continue after the occurrence the state last recorded (earlier than pos); then record
    // this one, the latest.
    State& m = states_[static_cast<size_t>(match_)];
    match_end_ = m.last_end;
    m.last_end = pos;
    recorded = match_;
  } else {
    match_ = 0;
    match_len_ = 0;
  }
  // 2. Online construction (Blumer et al. 1985): one new state, at most one clone.
  text_.push_back(token);
  const auto cur = static_cast<int32_t>(states_.size());
  states_.push_back({states_[static_cast<size_t>(last_)].len + 1, -1, pos, pos});
  out_tokens_.emplace_back();
  int32_t p = last_;
  while (p >= 0 && next(p, token) < 0) {
    edges_[edge_key(p, token)] = cur;
    out_tokens_[static_cast<size_t>(p)].push_back(token);
    p = states_[static_cast<size_t>(p)].link;
  }
  if (p < 0) {
    states_[static_cast<size_t>(cur)].link = 0;
  } else {
    const int32_t q = next(p, token);
    if (states_[static_cast<size_t>(p)].len + 1 == states_[static_cast<size_t>(q)].len) {
      states_[static_cast<size_t>(cur)].link = q;
    } else {
      const auto clone = static_cast<int32_t>(states_.size());
      State c = states_[static_cast<size_t>(q)];
      c.len = states_[static_cast<size_t>(p)].len + 1;
      // The clone's strings end at pos; q's longer ones do not: if q just recorded pos, it takes
      // back the end it had (the match then moves to the clone, below).
      if (q == recorded) states_[static_cast<size_t>(q)].last_end = match_end_;
      states_.push_back(c);
      // The clone takes q's outgoing edges (q's tokens are listed per state for this).
      out_tokens_.push_back(out_tokens_[static_cast<size_t>(q)]);
      for (int32_t t : out_tokens_[static_cast<size_t>(q)]) {
        edges_[edge_key(clone, t)] = next(q, t);
      }
      while (p >= 0 && next(p, token) == q) {
        edges_[edge_key(p, token)] = clone;
        p = states_[static_cast<size_t>(p)].link;
      }
      states_[static_cast<size_t>(q)].link = clone;
      states_[static_cast<size_t>(cur)].link = clone;
      // A match sitting in q with a length that now belongs to the clone moves there.
      if (match_ == q && match_len_ <= c.len) match_ = clone;
    }
  }
  last_ = cur;
}

SuffixAutomaton SuffixAutomaton::of_documents(std::span<const std::vector<int32_t>> documents) {
  SuffixAutomaton a;
  for (const std::vector<int32_t>& doc : documents) {
    for (int32_t t : doc) {
      PARETO_CHECK_MSG(t >= 0, "SuffixAutomaton: a corpus token id is negative");
      a.push(t);
    }
    a.push(kDocumentEnd);
  }
  return a;
}

void SuffixAutomaton::follow(SamCursor& cursor, int32_t token) const {
  // As step 1 of push: shorten the match along suffix links until `token` extends it.
  while (cursor.state != 0 && next(cursor.state, token) < 0) {
    cursor.state = states_[static_cast<size_t>(cursor.state)].link;
    cursor.length = states_[static_cast<size_t>(cursor.state)].len;
  }
  if (const int32_t to = next(cursor.state, token); to >= 0) {
    cursor.state = to;
    ++cursor.length;
  } else {
    cursor = {};
  }
}

void SuffixAutomaton::continuation_tokens(const SamCursor& cursor, int max_tokens,
                                          std::vector<int32_t>& out) const {
  out.clear();
  if (cursor.length == 0 || max_tokens <= 0) return;
  size_t at = static_cast<size_t>(states_[static_cast<size_t>(cursor.state)].first_end) + 1;
  for (; at < text_.size() && out.size() < static_cast<size_t>(max_tokens); ++at) {
    if (text_[at] == kDocumentEnd) break;
    out.push_back(text_[at]);
  }
}

size_t SuffixAutomaton::continuation() const {
  return static_cast<size_t>(match_end_) + 1;
}

void SuffixAutomaton::continuation_tokens(int max_tokens, std::vector<int32_t>& out) const {
  out.clear();
  if (match_len_ == 0 || max_tokens <= 0) return;
  const size_t from = continuation();
  const size_t to = std::min(text_.size(), from + static_cast<size_t>(max_tokens));
  if (from < to)
    out.assign(text_.begin() + static_cast<std::ptrdiff_t>(from),
               text_.begin() + static_cast<std::ptrdiff_t>(to));
}

void SamDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  PARETO_CHECK_MSG(seq.tokens.size() >= automaton_.size(),
                   "SamDrafter: a sequence's accepted tokens never shrink");
  for (size_t i = automaton_.size(); i < seq.tokens.size(); ++i) {
    automaton_.push(seq.tokens[i]);
    if (corpus_ != nullptr) corpus_->follow(corpus_cursor_, seq.tokens[i]);
  }
  automaton_.continuation_tokens(max_tokens, out.tokens);
  match_length_ = out.tokens.empty() ? 0 : automaton_.match_length();
  // The longer match predicts better (SAM Decoding); on a tie the sequence's own text wins, being
  // the more specific context. A short corpus match says little about what comes next.
  if (corpus_ != nullptr && corpus_cursor_.length > automaton_.match_length() &&
      corpus_cursor_.length >= min_corpus_match_) {
    corpus_->continuation_tokens(corpus_cursor_, max_tokens, corpus_draft_);
    if (!corpus_draft_.empty()) {
      out.tokens.swap(corpus_draft_);
      match_length_ = corpus_cursor_.length;
    }
  }
}

}  // namespace pareto::decoding
