#include "decoding/layer_selection.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace pareto::decoding {
namespace {

double cosine(const std::vector<double>& a, std::span<const float> b) {
  double dot = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  const double c = aa > 0 && bb > 0 ? dot / std::sqrt(aa * bb) : (aa == 0 && bb == 0 ? 1.0 : 0.0);
  return std::isfinite(c) ? c : -1.0;  // a non-finite stream ranks last, never leaves a cell empty
}

}  // namespace

std::vector<uint8_t> choose_skipped_layers(std::span<const float> residuals, int n_layers, int dim,
                                           int n_skip) {
  PARETO_CHECK(n_layers >= 1 && dim >= 1);
  PARETO_CHECK(residuals.size() == static_cast<size_t>(n_layers + 1) * static_cast<size_t>(dim));
  const int m = std::clamp(n_skip, 0, std::max(n_layers - 2, 0));
  const auto at = [&](int boundary) {
    return residuals.subspan(static_cast<size_t>(boundary) * static_cast<size_t>(dim),
                             static_cast<size_t>(dim));
  };
  const auto d = static_cast<size_t>(dim);
  // state[j]: the stand-in with j layers skipped so far (empty: unreachable); skipped[l][j]: the
  // choice at layer l that led to state (l + 1, j).
  std::vector<std::vector<double>> state(static_cast<size_t>(m + 1)), next(state.size());
  std::vector<std::vector<uint8_t>> skipped(static_cast<size_t>(n_layers),
                                            std::vector<uint8_t>(state.size(), 0));
  state[0].assign(at(0).begin(), at(0).end());
  for (int l = 0; l < n_layers; ++l) {
    const std::span<const float> in = at(l), out = at(l + 1);
    const bool may_skip = l > 0 && l < n_layers - 1;
    for (size_t j = 0; j < state.size(); ++j) {
      next[j].clear();
      double best = -2;
      if (!state[j].empty()) {  // layer l runs: the state takes its update
        next[j].resize(d);
        for (size_t i = 0; i < d; ++i) next[j][i] = state[j][i] + (out[i] - in[i]);
        best = cosine(next[j], out);
      }
      if (may_skip && j > 0 && !state[j - 1].empty() && cosine(state[j - 1], out) > best) {
        next[j] = state[j - 1];  // layer l skipped: the state passes through
        skipped[static_cast<size_t>(l)][j] = 1;
      }
    }
    std::swap(state, next);
  }
  std::vector<uint8_t> mask(static_cast<size_t>(n_layers), 0);
  size_t j = static_cast<size_t>(m);
  PARETO_CHECK(!state[j].empty());
  for (int l = n_layers - 1; l >= 0; --l) {
    if (skipped[static_cast<size_t>(l)][j] != 0) {
      mask[static_cast<size_t>(l)] = 1;
      --j;
    }
  }
  PARETO_CHECK(j == 0);
  return mask;
}

}  // namespace pareto::decoding
