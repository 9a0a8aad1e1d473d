// `window`: attention sinks plus a recent window (StreamingLLM; Xiao et al., "Efficient Streaming
// Language Models with Attention Sinks", ICLR 2024): the first entries, which soak up attention
// whatever their content, and the most recent ones. Needs no attention weights.
#include <algorithm>

#include "kv/kv_policy.h"

namespace pareto::kv {

namespace {

// The paper keeps 4 sink tokens; a budget too small for them keeps half of it as sinks.
constexpr int kSinks = 4;

class WindowPolicy final : public KvPolicy {
 public:
  std::string_view name() const override { return "window"; }
  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    const int length = cache.length(layer, head);
    const int sinks = std::min(kSinks, keep / 2);
    const int recent = keep - sinks;
    std::vector<int> drop;
    drop.reserve(static_cast<size_t>(length - keep));
    for (int i = sinks; i < length - recent; ++i) drop.push_back(i);
    return drop;
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_window_policy(const KvShape&) {
  return std::make_unique<WindowPolicy>();
}

}  // namespace pareto::kv
