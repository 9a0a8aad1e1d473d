// The table of strategies by name: a speculative drafter adds one line here and one file.
// "a,b,..." (several drafter names) is the bandit over those drafters and plain decoding.
#include <string>

#include "decoding/autoregressive.h"
#include "decoding/bandit.h"
#include "decoding/draft_length.h"
#include "decoding/draft_model.h"
#include "decoding/draft_tree.h"
#include "decoding/ngram.h"
#include "decoding/sam_draft.h"
#include "decoding/speculative.h"
#include "decoding/strategy.h"
#include "decoding/suffix_automaton.h"

namespace pareto::decoding {
namespace {

using MadeDrafter = Result<std::unique_ptr<Drafter>>;

Status need_draft_model(const StrategyContext& c, std::string_view name) {
  if (c.draft_model != nullptr) return ok();
  return make_error_code(ErrorCode::kInvalidArgument, "decoding strategy '", name,
                         "' needs a draft model (load one: --draft-model FILE)");
}

MadeDrafter draft_model(const StrategyContext& c, bool adaptive) {
  PARETO_RETURN_IF_ERROR(need_draft_model(c, adaptive ? "draft-adaptive" : "draft"));
  return std::unique_ptr<Drafter>(
      new DraftModelDrafter(*c.draft_model, adaptive, c.draft_length_memory));
}

MadeDrafter bandit(const StrategyContext& c);

// A model-free drafter, its proposals cut to the length that pays (draft_length.h) unless the
// context asks for fixed lengths.
std::unique_ptr<Drafter> sized(const StrategyContext& c, std::unique_ptr<Drafter> guesser) {
  if (c.fixed_draft_length) return guesser;
  return std::make_unique<CostAwareLength>(std::move(guesser), c.draft_length_memory);
}

// The layers the self-speculative draft skips at first: every other layer strictly inside the
// stack (the first and the last always run). After each verification the drafter re-chooses as
// many by CLaSp's dynamic programming (decoding/layer_selection.h).
std::vector<uint8_t> layer_skip_set(const model::ModelConfig& c) {
  std::vector<uint8_t> skip(static_cast<size_t>(c.n_layers), 0);
  for (int l = 1; l + 1 < c.n_layers; l += 2) skip[static_cast<size_t>(l)] = 1;
  return skip;
}

struct Registered {
  std::string_view name;
  MadeDrafter (*make)(const StrategyContext&);  // null: autoregressive
};

constexpr Registered kStrategies[] = {
    {"autoregressive", nullptr},
    {"ngram",
     [](const StrategyContext& c) -> MadeDrafter {
       return sized(c, std::make_unique<NgramDrafter>(3, c.ngram_cache));
     }},
    {"sam",
     [](const StrategyContext& c) -> MadeDrafter {
       return sized(c, std::make_unique<SamDrafter>(c.sam_corpus));
     }},
    {"draft", [](const StrategyContext& c) { return draft_model(c, false); }},
    {"draft-adaptive", [](const StrategyContext& c) { return draft_model(c, true); }},
    {"layerskip",
     [](const StrategyContext& c) -> MadeDrafter {
       if (c.self_draft == nullptr) {
         return make_error_code(ErrorCode::kInvalidArgument,
                                "decoding strategy 'layerskip' needs the engine's target model");
       }
       return std::unique_ptr<Drafter>(new DraftModelDrafter(
           *c.self_draft, layer_skip_set(c.self_draft->model->config()), c.draft_length_memory));
     }},
    {"tree",
     [](const StrategyContext& c) -> MadeDrafter {
       PARETO_RETURN_IF_ERROR(need_draft_model(c, "tree"));
       return std::unique_ptr<Drafter>(new DraftTreeDrafter(*c.draft_model));
     }},
    {"draft-sam",
     [](const StrategyContext& c) -> MadeDrafter {
       PARETO_RETURN_IF_ERROR(need_draft_model(c, "draft-sam"));
       return std::unique_ptr<Drafter>(new SamDraftDrafter(
           *c.draft_model, c.sam_corpus, c.fixed_draft_length, c.draft_length_memory));
     }},
    {"bandit", bandit},
};

MadeDrafter make_drafter(std::string_view name, const StrategyContext& c) {
  std::string valid;
  for (const Registered& r : kStrategies) {
    if (r.name == name && r.make != nullptr) return r.make(c);
    valid += (valid.empty() ? "" : ", ") + std::string(r.name);
  }
  return make_error_code(ErrorCode::kInvalidArgument, "unknown decoding strategy '", name,
                         "' (valid: ", valid, ", or several drafters as a,b for a bandit)");
}

// The drafters that can run here, without one that another contains: n-gram lookup, and the
// suffix automaton alone or, when a draft model is loaded, with the draft model behind it
// (draft-sam: where draft-sam was the best single strategy, arms {ngram, sam, draft-adaptive}
// reached 0.85-0.89x of it and {ngram, draft-sam} 0.88-1.09x; docs/techniques/drafter-bandit.md).
MadeDrafter bandit(const StrategyContext& c) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(sized(c, std::make_unique<NgramDrafter>(3, c.ngram_cache)));
  if (c.draft_model != nullptr) {
    arms.push_back(std::make_unique<SamDraftDrafter>(*c.draft_model, c.sam_corpus,
                                                     c.fixed_draft_length, c.draft_length_memory));
  } else {
    arms.push_back(sized(c, std::make_unique<SamDrafter>(c.sam_corpus)));
  }
  return std::unique_ptr<Drafter>(new BanditDrafter(std::move(arms), c.bandit_memory));
}

}  // namespace

std::vector<std::string_view> strategy_names() {
  std::vector<std::string_view> names;
  for (const Registered& r : kStrategies) names.push_back(r.name);
  return names;
}

Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name,
                                                        const StrategyContext& context) {
  if (name == "autoregressive") return std::unique_ptr<DecodingStrategy>(new Autoregressive());
  if (context.draft_max < 1) {
    return make_error_code(ErrorCode::kInvalidArgument, "decoding strategy '", name,
                           "': the draft budget (--draft-max) must be at least 1, got ",
                           context.draft_max);
  }
  std::unique_ptr<Drafter> drafter;
  if (name.find(',') == std::string_view::npos) {
    PARETO_TRY(drafter, make_drafter(name, context));
  } else {
    std::vector<std::unique_ptr<Drafter>> arms;
    for (size_t at = 0; at <= name.size();) {
      const size_t comma = std::min(name.find(',', at), name.size());
      const std::string_view arm = name.substr(at, comma - at);
      if (arm == "bandit" || arm == "autoregressive") {
        return make_error_code(ErrorCode::kInvalidArgument, "decoding strategy '", name, "': '",
                               arm, "' cannot be a bandit arm (list drafters)");
      }
      for (const auto& made : arms) {
        if (made->name() == arm) {
          return make_error_code(ErrorCode::kInvalidArgument, "decoding strategy '", name, "': '",
                                 arm, "' is listed twice (list each drafter once)");
        }
      }
      PARETO_TRY(auto d, make_drafter(arm, context));
      arms.push_back(std::move(d));
      at = comma + 1;
    }
    drafter = std::make_unique<BanditDrafter>(std::move(arms), context.bandit_memory);
  }
  return std::unique_ptr<DecodingStrategy>(
      new SpeculativeStrategy(std::move(drafter), context.draft_max));
}

Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name) {
  return make_strategy(name, StrategyContext{});
}

}  // namespace pareto::decoding
