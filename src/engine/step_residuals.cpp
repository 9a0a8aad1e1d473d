#include "engine/step_residuals.h"

#include <algorithm>

namespace pareto::engine {

void StepResiduals::begin_step(size_t n_planned) {
  capture_.rows.clear();
  capture_.values.clear();
  first_row_.assign(n_planned, -1);
  n_rows_.assign(n_planned, 0);
}

void StepResiduals::want(size_t index, std::span<const model::BatchEntry> batch, size_t first,
                         int n) {
  const auto entries = batch.subspan(first, static_cast<size_t>(n));
  if (!std::all_of(entries.begin(), entries.end(),
                   [](const model::BatchEntry& e) { return e.logits; })) {
    return;
  }
  first_row_[index] = static_cast<int64_t>(capture_.rows.size());
  n_rows_[index] = n;
  for (int e = 0; e < n; ++e) capture_.rows.push_back(static_cast<int32_t>(first) + e);
}

std::span<const float> StepResiduals::of(size_t index, const model::ModelConfig& config) {
  if (index >= first_row_.size() || first_row_[index] < 0) return {};
  const auto per_row = static_cast<size_t>(config.n_layers + 1) * static_cast<size_t>(config.dim);
  const size_t begin = static_cast<size_t>(first_row_[index]) * per_row;
  const size_t size = static_cast<size_t>(n_rows_[index]) * per_row;
  if (begin + size > capture_.values.size()) return {};  // the forward captured nothing
  rows_captured_ += n_rows_[index];
  return std::span<const float>(capture_.values).subspan(begin, size);
}

}  // namespace pareto::engine
