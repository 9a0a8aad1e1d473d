// Suffix-automaton drafting with a draft model behind it ("draft-sam"; Hu et al., "SAM
// Decoding", ACL 2025, which pairs its automaton with an auxiliary drafter): where the text so far
// repeats (a long match in the suffix automaton of prompt + output, or of a corpus) the match's
// continuation is the draft, at no drafting cost; elsewhere the draft model drafts. On code the
// two complement each other: copied identifiers, calls and lines are long and mostly right, and
// the draft model carries the new code between them.
//
// A step takes the automaton's draft when its match is at least `min_match` tokens and the
// cost-aware length (draft_length.h, measured on the drafts this strategy took from the automaton)
// keeps some of it; else the draft model drafts (adaptive length, as "draft-adaptive"). The draft
// model's cache falls behind while the automaton drafts and takes the accepted tokens in as one
// batch at its next draft (or at catch_up()). Each half is told of the verifications of its own
// drafts only, so each measures what it proposes. Greedy output stays plain decoding's; sampled
// output keeps the target's distribution (the automaton's guesses are one-hot drafts, the model's
// carry q).
#pragma once

#include <memory>

#include "decoding/draft_length.h"
#include "decoding/draft_model.h"
#include "decoding/drafter.h"
#include "decoding/suffix_automaton.h"

namespace pareto::decoding {

class SamDraftDrafter final : public Drafter {
 public:
  // The shortest match whose continuation drafts (docs/techniques/sam-draft.md: 4 to 12 measured
  // alike on the pycode workload, 1 and 2 worse).
  static constexpr int kMinMatch = 6;
  // fixed_length (the registry's StrategyContext::fixed_draft_length): neither half sizes its
  // drafts by measured costs (the automaton proposes its whole continuation, the draft model
  // drafts max_tokens, as "draft"); `memory`: statistics shared across requests (null: each
  // half's own).
  SamDraftDrafter(const DraftModelResources& draft_model, const SuffixAutomaton* corpus,
                  bool fixed_length, DraftLengthMemory* memory, int min_match = kMinMatch);
  std::string_view name() const override { return "draft-sam"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;
  // What the draft model lags by beyond the tokens this drafter's own automaton steps accepted:
  // taking those in is part of its running cost (its next model draft pays for them, as alone),
  // not the price of switching to it after steps it sat out (a bandit's arm, bandit.h).
  int lag(const SequenceState& seq) const override;
  // Takes in all it lags by; returns the seconds of the share lag() reports.
  double catch_up(const SequenceState& seq) override;

  // Which half made the last draft (kNone: neither proposed anything).
  enum class Source { kNone, kAutomaton, kModel };
  Source last_source() const { return last_; }

 private:
  SamDrafter* automaton_;             // owned by guesser_
  std::unique_ptr<Drafter> guesser_;  // the automaton, sized unless fixed_length
  DraftModelDrafter model_;
  int min_match_;
  Source last_ = Source::kNone;
  int own_unsynced_ = 0;  // tokens its automaton steps added since the draft model last synced
};

}  // namespace pareto::decoding
