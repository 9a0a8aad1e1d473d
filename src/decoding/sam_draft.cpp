#include "decoding/sam_draft.h"

#include <algorithm>

namespace pareto::decoding {

SamDraftDrafter::SamDraftDrafter(const DraftModelResources& draft_model,
                                 const SuffixAutomaton* corpus, bool fixed_length,
                                 DraftLengthMemory* memory, int min_match)
    : model_(draft_model, !fixed_length, memory), min_match_(min_match) {
  auto automaton = std::make_unique<SamDrafter>(corpus);
  automaton_ = automaton.get();
  // Its own statistics, not plain "sam"'s: this strategy proposes only the long matches.
  if (fixed_length) {
    guesser_ = std::move(automaton);
  } else {
    guesser_ = std::make_unique<CostAwareLength>(std::move(automaton), memory, name());
  }
}

void SamDraftDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  last_ = Source::kNone;
  guesser_->draft(seq, max_tokens, out);
  if (!out.tokens.empty() && automaton_->match_length() >= min_match_) {
    last_ = Source::kAutomaton;
    return;
  }
  out.clear();
  model_.draft(seq, max_tokens, out);
  if (model_.lag(seq) == 0) own_unsynced_ = 0;  // synced (no room, or no pages: still behind)
  if (!out.tokens.empty()) last_ = Source::kModel;
}

int SamDraftDrafter::lag(const SequenceState& seq) const {
  return std::max(0, model_.lag(seq) - own_unsynced_);
}

double SamDraftDrafter::catch_up(const SequenceState& seq) {
  const int lag = model_.lag(seq);
  const double seconds = model_.catch_up(seq);
  if (seconds <= 0 || lag <= 0) return seconds;
  // The share of the tokens lag() reports: the rest, its own automaton steps', is running cost
  // and stays in the caller's draft time.
  const double switching = static_cast<double>(std::max(0, lag - own_unsynced_)) / lag;
  own_unsynced_ = 0;
  return seconds * switching;
}

void SamDraftDrafter::verified(const SequenceState& seq, const Verification& v) {
  if (last_ == Source::kAutomaton) {
    guesser_->verified(seq, v);
    own_unsynced_ += v.accepted + 1;  // the accepted drafts and the target's own next token
  }
  if (last_ == Source::kModel) model_.verified(seq, v);
}

}  // namespace pareto::decoding
