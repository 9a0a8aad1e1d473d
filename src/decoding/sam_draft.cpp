#include "decoding/sam_draft.h"

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
  if (!out.tokens.empty()) last_ = Source::kModel;
}

void SamDraftDrafter::verified(const SequenceState& seq, const Verification& v) {
  if (last_ == Source::kAutomaton) guesser_->verified(seq, v);
  if (last_ == Source::kModel) model_.verified(seq, v);
}

}  // namespace pareto::decoding
