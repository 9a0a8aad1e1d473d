// The KV-budget registry, budget parsing and the enforcement loop (kv_policy.h); `full` is here
// too: it never evicts (the reference every policy is measured against).
#include "kv/kv_policy.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include "base/check.h"

namespace pareto::kv {

int KvBudget::keep(int seen) const {
  if (entries > 0) return entries;
  return std::max(1, static_cast<int>(std::ceil(fraction * seen - 1e-9)));
}

namespace {
Result<KvBudget> parse_one_budget(std::string_view text);
}  // namespace

Result<KvBudget> parse_kv_budget(std::string_view text) {
  if (text.find(',') == std::string_view::npos) return parse_one_budget(text);
  KvBudget b;
  for (size_t at = 0;;) {
    const size_t comma = std::min(text.find(',', at), text.size());
    auto layer = parse_one_budget(text.substr(at, comma - at));
    if (!layer) {
      return make_error("kv budget '", text, "': layer ", b.layers.size(), ": ",
                        layer.error().message);
    }
    b.layers.push_back(*layer);
    if (comma == text.size()) break;
    at = comma + 1;
  }
  return b;
}

Status KvBudget::check_layers(int n_layers) const {
  if (layers.empty() || static_cast<int>(layers.size()) == n_layers) return ok();
  return make_error("kv budget: ", layers.size(), " per-layer budgets, the model has ", n_layers,
                    " layers (give one budget, or one per layer)");
}

namespace {

Result<KvBudget> parse_one_budget(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return make_error("kv budget '", text, "': ", why,
                      " (expected a percentage such as 20%, a fraction in (0, 1] or a whole "
                      "number of entries >= 1)");
  };
  if (text.empty()) return bad("empty");
  std::string_view number = text;
  const bool percent = text.back() == '%';
  if (percent) number.remove_suffix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || number.empty()) {
    return bad("not a number");
  }
  if (!std::isfinite(value) || value <= 0) return bad("must be above 0");
  KvBudget b;
  if (percent) {
    if (value > 100) return bad("above 100%");
    b.fraction = value / 100;
  } else if (number.find_first_of(".eE") != std::string_view::npos || value <= 1) {
    if (value > 1) return bad("a fraction above 1");
    b.fraction = value;
  } else {
    if (value != std::floor(value) || value > 1e9) return bad("not a whole number of entries");
    b.entries = static_cast<int>(value);
  }
  return b;
}

class FullPolicy final : public KvPolicy {
 public:
  std::string_view name() const override { return "full"; }
  std::vector<int> select(const KvCache&, int, int, int) override { return {}; }
};

}  // namespace

std::vector<std::string> kv_policy_names() {
  return {"full", "window", "h2o", "snapkv", "pyramid", "defensive", "refresh", "adakv"};
}

Result<std::unique_ptr<KvPolicy>> make_kv_policy(std::string_view name, const KvShape& shape) {
  if (name == "full") return std::unique_ptr<KvPolicy>(std::make_unique<FullPolicy>());
  if (name == "window") return make_window_policy(shape);
  if (name == "h2o") return make_h2o_policy(shape);
  if (name == "snapkv") return make_snapkv_policy(shape);
  if (name == "adakv") return make_adakv_policy(shape);
  if (name == "pyramid") return make_pyramid_policy(shape);
  if (name == "defensive") return make_defensive_policy(shape);
  if (name == "refresh") return make_refresh_policy(shape);
  std::string known;
  for (const std::string& n : kv_policy_names()) known += (known.empty() ? "" : ", ") + n;
  return make_error("kv policy: unknown policy '", name, "' (known: ", known, ")");
}

namespace {

// Entries each (layer, head) keeps after `seen` tokens (at least 1); the user's per-layer
// allocation replaces the policy's.
int keep_of(const KvPolicy& policy, const KvBudget& budget, int layer, int seen) {
  if (!budget.layers.empty()) return budget.keep(layer, seen);
  return std::max(1, policy.layer_keep(layer, budget.keep(seen), seen));
}

// For policies that keep what attention leaves out (RefreshKV): the chosen entries are copied into
// a fresh small cache, which becomes `cache`, and the whole one is parked. Copying the fifth that
// stays costs far less than moving the rest out and merging it back at the next refresh.
int64_t select_small_cache(KvCache& cache, KvPolicy& policy, const KvBudget& budget,
                           KvCache* parked) {
  const KvShape s = cache.shape();
  const int seen = cache.n_tokens();
  std::vector<std::vector<int>> drops(static_cast<size_t>(s.n_layers * s.n_kv_heads));
  bool any = false;
  for (int l = 0; l < s.n_layers; ++l) {
    const int keep = keep_of(policy, budget, l, seen);
    for (int h = 0; h < s.n_kv_heads && keep < seen; ++h) {
      const int length = cache.length(l, h);
      if (length <= keep) continue;
      std::vector<int>& drop = drops[static_cast<size_t>(l * s.n_kv_heads + h)];
      drop = policy.select(cache, l, h, keep);
      PARETO_CHECK_MSG(drop.empty() || static_cast<int>(drop.size()) == length - keep,
                       "KvPolicy::select must leave exactly `keep` entries");
      any = any || !drop.empty();
    }
  }
  if (!any) return 0;
  PARETO_CHECK_MSG(parked != nullptr,
                   "enforce_kv_budget: this policy parks what it evicts; pass a cache");
  PARETO_CHECK_MSG(parked->pages_held() == 0, "enforce_kv_budget: the parked cache is in use");
  // The small copy takes pages of its own: when the pool cannot spare them, attention stays on the
  // whole cache (exact, only slower) rather than exceed the pool's limit.
  const int page = cache.pool().options().page_entries;
  int64_t pages = 0;
  for (int l = 0; l < s.n_layers; ++l) {
    for (int h = 0; h < s.n_kv_heads; ++h) {
      const auto dropped =
          static_cast<int>(drops[static_cast<size_t>(l * s.n_kv_heads + h)].size());
      pages += (cache.length(l, h) - dropped + page - 1) / page;
    }
  }
  if (!cache.pool().can_allocate(pages)) return 0;
  int64_t moved = 0;
  std::vector<int> kept;
  for (int l = 0; l < s.n_layers; ++l) {
    for (int h = 0; h < s.n_kv_heads; ++h) {
      const std::vector<int>& drop = drops[static_cast<size_t>(l * s.n_kv_heads + h)];
      // drop is ascending (select's contract): its complement in one pass.
      kept.clear();
      for (int e = 0, d = 0; e < cache.length(l, h); ++e) {
        if (d < static_cast<int>(drop.size()) && drop[static_cast<size_t>(d)] == e) {
          ++d;
        } else {
          kept.push_back(e);
        }
      }
      cache.copy_entries(l, h, kept, *parked);
      if (drop.empty()) continue;
      policy.erased(l, h, drop);
      moved += static_cast<int64_t>(drop.size());
    }
  }
  parked->set_n_tokens(seen);
  std::swap(cache, *parked);
  return moved;
}

}  // namespace

void before_kv_forward(KvCache& cache, KvPolicy& policy, KvCache& parked, bool prompt) {
  if (!policy.keeps_evicted() || !policy.restore_before_forward(prompt)) return;
  if (parked.n_tokens() == 0) return;  // nothing parked
  // `parked` is the whole cache as of the last selection; the small one has since gained the
  // entries of the tokens after it: they join the whole one, which attention uses again.
  const KvShape s = cache.shape();
  const int since = parked.n_tokens();
  std::vector<int> newer;
  for (int l = 0; l < s.n_layers; ++l) {
    for (int h = 0; h < s.n_kv_heads; ++h) {
      newer.clear();
      for (int e = 0; e < cache.length(l, h); ++e) {
        if (cache.position(l, h, e) >= since) newer.push_back(e);
      }
      cache.copy_entries(l, h, newer, parked);
    }
  }
  parked.set_n_tokens(cache.n_tokens());
  std::swap(cache, parked);
  parked.clear();
}

int64_t enforce_kv_budget(KvCache& cache, KvPolicy& policy, const KvBudget& budget,
                          KvCache* parked) {
  if (budget.is_full()) return 0;
  const KvShape s = cache.shape();
  const Status layers_fit = budget.check_layers(s.n_layers);
  PARETO_CHECK_MSG(layers_fit.has_value(), "enforce_kv_budget: per-layer budgets != layers");
  const int seen = cache.n_tokens();
  // A budget that holds every token seen binds nothing (a policy that moves budget between layers
  // must not evict then either).
  if (budget.layers.empty() && budget.keep(seen) >= seen) return 0;
  if (policy.keeps_evicted()) return select_small_cache(cache, policy, budget, parked);
  int64_t evicted = 0;
  std::vector<int> keeps(static_cast<size_t>(s.n_kv_heads));
  for (int l = 0; l < s.n_layers; ++l) {
    const int layer_keep = keep_of(policy, budget, l, seen);
    if (layer_keep >= seen) continue;
    if (policy.shares_budget_between_heads()) {
      // Re-allocate only when the layer is over its budget as a whole: between, the heads grow
      // into the slack eviction_target left, as even splits do.
      int64_t held = 0;
      for (int h = 0; h < s.n_kv_heads; ++h) held += cache.length(l, h);
      if (held <= int64_t{layer_keep} * s.n_kv_heads) continue;
      policy.head_keeps(cache, l, layer_keep, keeps);
    } else {
      std::fill(keeps.begin(), keeps.end(), layer_keep);
    }
    for (int h = 0; h < s.n_kv_heads; ++h) {
      const int keep = std::max(1, keeps[static_cast<size_t>(h)]);
      const int length = cache.length(l, h);
      if (length <= keep) continue;
      const int target = eviction_target(keep);
      const std::vector<int> drop = policy.select(cache, l, h, target);
      if (drop.empty()) continue;
      PARETO_CHECK_MSG(static_cast<int>(drop.size()) == length - target,
                       "KvPolicy::select must leave exactly `keep` entries");
      cache.erase(l, h, drop);
      policy.erased(l, h, drop);
      evicted += static_cast<int64_t>(drop.size());
    }
  }
  return evicted;
}

std::vector<float>& EntryScores::sized(int layer, int head, int length) {
  std::vector<float>& v = at(layer, head);
  if (static_cast<int>(v.size()) < length) v.resize(static_cast<size_t>(length), 0.0f);
  return v;
}

void erase_indices(std::vector<float>& v, std::span<const int> indices) {
  size_t next = 0, out = 0;
  for (size_t j = 0; j < v.size(); ++j) {
    if (next < indices.size() && indices[next] == static_cast<int>(j)) {
      ++next;
      continue;
    }
    v[out++] = v[j];
  }
  v.resize(out);
}

void EntryScores::erase(int layer, int head, std::span<const int> indices) {
  erase_indices(at(layer, head), indices);
}

void EntryScores::truncate(int layer, int head, int length) {
  std::vector<float>& v = at(layer, head);
  if (static_cast<int>(v.size()) > length) v.resize(static_cast<size_t>(length));
}

std::vector<int> drop_all_but_recent_and_top(std::span<const float> score, int keep, int recent) {
  const int length = static_cast<int>(score.size());
  const int old = length - recent;  // candidates [0, old)
  const int top = keep - recent;
  std::vector<int> idx(static_cast<size_t>(old));
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + top, idx.end(), [&](int a, int b) {
    const float sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
    return sa != sb ? sa > sb : a < b;
  });
  idx.resize(static_cast<size_t>(top));
  for (int i = old; i < length; ++i) idx.push_back(i);
  return complement(std::move(idx), length);
}

std::vector<int> complement(std::vector<int> kept, int length) {
  std::sort(kept.begin(), kept.end());
  std::vector<int> out;
  out.reserve(static_cast<size_t>(std::max(0, length - static_cast<int>(kept.size()))));
  size_t k = 0;
  for (int i = 0; i < length; ++i) {
    while (k < kept.size() && kept[k] < i) ++k;
    if (k < kept.size() && kept[k] == i) continue;
    out.push_back(i);
  }
  return out;
}

}  // namespace pareto::kv
