// Cost-aware draft length for drafters that guess (n-gram lookup, suffix automaton): such a
// drafter finds a continuation of up to --draft-max tokens at no cost, but every proposed token
// is an entry the target must verify, and on a small model one more entry costs a sixth of a
// whole step. Proposing all of a long match pays only while the tokens are likely to pass.
//
// The rule is that of adaptive draft length on the fly (Zhang et al., ACL 2025, "on-the-fly
// adaptation"; the draft model's form is DraftModelDrafter's): propose the prefix length k that
// maximises expected tokens per second of verification,
//   E[tokens | k] / (step + per_entry x k),  E[tokens | k] = 1 + sum_{i<k} prod_{j<=i} alpha_j,
// with alpha_j the measured chance that draft position j passes once every earlier one did, and
// step / per_entry the measured verification cost (VerifyCostFit). Both are decayed averages:
// the cost and a prior for the rates are shared by every request of the engine that uses the
// same drafter (DraftLengthMemory: the cost is the model's and the machine's, and a new request
// starts from what earlier ones measured instead of an even chance), and each sequence's own
// rates move from that prior as it is verified, so the choice follows the text: long copies earn
// long drafts, new code short ones. A position never measured takes the previous position's rate
// (the first: an even chance). k = 0 (a plain step) is chosen when no draft pays; the decayed
// counts then drift back to their priors, and drafting resumes when they say it may pay again;
// besides, a request's drafter proposes one token as a probe after kProbeAfter of its drafts in a
// row were cut to nothing (steps where it found nothing do not count).
//
// Truncating a proposal changes which tokens are verified, never the output: greedy output stays
// that of plain decoding, and sampled output keeps the target's distribution (a shorter chain of
// the same guesses). But since the lengths follow measured times, a sampled run with a fixed seed
// may draw differently from one run to the next (the draws consumed depend on the lengths);
// fixed lengths (StrategyContext::fixed_draft_length) keep such a run reproducible.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "decoding/drafter.h"

namespace pareto::decoding {

// Acceptance by draft position: decayed counts of drafts that reached position j with every
// earlier position passed (offered) and of those whose position j passed (accepted).
struct PassCounts {
  static constexpr int kPositions = 64;  // the scheduler's longest draft
  std::array<double, kPositions> offered{};
  std::array<double, kPositions> accepted{};
  // Decays every count by `decay`, then counts a verification of `drafted` tokens of which the
  // first `accepted_tokens` passed.
  void add(int drafted, int accepted_tokens, double decay);
};

// What a drafter's sequences share: the verification cost and the acceptance by position.
struct DraftLengthStats {
  // Every request's verifications: a slow decay smooths one descheduled step (a busy machine)
  // that would otherwise tilt the slope and stop drafts for a while.
  VerifyCostFit cost{0.98};
  PassCounts passes;
};

// What the requests of a draft-model drafter with adaptive length share (draft-adaptive,
// layerskip; DraftModelDrafter): the cost of a draft token and of verifying n entries are the
// models' and the machine's, the calibration of the draft's confidence is the pair's. A request
// starts from what earlier ones measured instead of from a few fixed-length steps and an
// uncalibrated confidence (each cold start drafted --draft-max tokens: a bandit's rare pulls of
// the draft model were nearly all cold).
struct DraftModelStats {
  double draft_token_seconds = 0;      // one draft forward of one token, decayed mean
  VerifyCostFit cost{0.9};             // the target's verifications of its drafts
  double predicted = 0, accepted = 0;  // decayed sums over draft positions reached
};

// DraftLengthStats and DraftModelStats per drafter name, shared by every request of an engine.
// stats_for / model_stats_for run when a drafter is made (on a submitting thread, under the
// scheduler's StrategyMemories lock); the stats are then updated by the step thread only.
class DraftLengthMemory {
 public:
  DraftLengthStats& stats_for(std::string_view drafter_name);
  DraftModelStats& model_stats_for(std::string_view drafter_name);

 private:
  std::map<std::string, DraftLengthStats, std::less<>> stats_;
  std::map<std::string, DraftModelStats, std::less<>> model_stats_;
};

class CostAwareLength final : public Drafter {
 public:
  // `memory`: shared statistics (null: this drafter's own), kept under `stats_name` (empty: the
  // inner drafter's name; another name where the same guesser serves another strategy).
  explicit CostAwareLength(std::unique_ptr<Drafter> inner, DraftLengthMemory* memory = nullptr,
                           std::string_view stats_name = {});
  CostAwareLength(const CostAwareLength&) = delete;  // shared_ may point at own_
  CostAwareLength& operator=(const CostAwareLength&) = delete;
  std::string_view name() const override { return inner_->name(); }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;
  int lag(const SequenceState& seq) const override { return inner_->lag(seq); }
  double catch_up(const SequenceState& seq) override { return inner_->catch_up(seq); }
  bool wants_residuals() const override { return inner_->wants_residuals(); }
  bool free_to_ask() const override { return inner_->free_to_ask(); }

  // The length in [0, available] with the most expected tokens per second (available while the
  // cost is not yet measured).
  int choose(int available) const;
  // Position j's estimated chance to pass after positions 0..j-1 passed.
  double pass_rate(int position) const;

  static constexpr double kSequenceDecay = 0.9;  // weight of the past, per verification
  static constexpr double kSharedDecay = 0.98;   // the same for the shared counts
  static constexpr double kPriorWeight = 2;      // verifications' worth of a prior
  // After this many of a request's drafts in a row were found and cut to nothing, one token is
  // proposed anyway: the rates are measured again even where the prior alone says no draft pays
  // (when one more entry costs half a step or more, an even chance never does).
  static constexpr int kProbeAfter = 32;

 private:
  std::unique_ptr<Drafter> inner_;
  DraftLengthStats own_;  // used when no memory is shared
  DraftLengthStats* shared_;
  PassCounts sequence_;  // this sequence's passes
  int withheld_ = 0;     // drafts found and cut to nothing in a row
};

}  // namespace pareto::decoding
