// StepResiduals: the residual streams one step's forward captures for the sequences whose strategy
// wants them (self-speculation re-choosing its skipped layers, CLaSp), then the slice of each.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/batch.h"
#include "model/model.h"

namespace pareto::engine {

class StepResiduals {
 public:
  // Clears the previous step; `n_planned`: the step's planned runs.
  void begin_step(size_t n_planned);
  // Planned run `index`, whose entries are batch[first, first + n): captured if every entry wants
  // logits (each proposal so far asks for all).
  void want(size_t index, std::span<const model::BatchEntry> batch, size_t first, int n);
  // The capture to give the forward (null: nothing wanted).
  model::ResidualCapture* capture() { return capture_.rows.empty() ? nullptr : &capture_; }
  // Run `index`'s streams after the forward, [n][n_layers + 1][dim] (counted as handed out);
  // empty when not captured.
  std::span<const float> of(size_t index, const model::ModelConfig& config);
  int64_t rows_captured() const { return rows_captured_; }  // since creation

 private:
  model::ResidualCapture capture_;
  std::vector<int64_t> first_row_;  // per planned run: its first row in capture_, -1 if none
  std::vector<int> n_rows_;
  int64_t rows_captured_ = 0;
};

}  // namespace pareto::engine
