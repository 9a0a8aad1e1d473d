// Which layers a self-speculative draft skips, chosen afresh after each verification (CLaSp,
// "In-Context Layer Skip for Self-Speculative Decoding", Chen et al., ACL 2025): dynamic
// programming over the layers, on the residual stream of the last verified token. State (l, j):
// the best stand-in for the stream after layers 0..l-1 with j of them skipped, "best" meaning
// closest in cosine to the full model's stream there; each layer either runs (the state takes the
// layer's update) or is skipped (the state passes through). The answer is the path to (n_layers,
// n_skip).
//
// One departure, for cost: CLaSp runs each candidate state through the layer (about one
// verification's worth of compute per selection); here a layer's effect on any candidate is the
// update it made to the full stream in that verification, h[l + 1] - h[l] (first order in the
// difference between the candidate and h[l]), so a selection costs O(n_layers x n_skip x dim).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pareto::decoding {

// `residuals`: [n_layers + 1][dim], the stream at each layer's input and after the last layer.
// Returns a mask of n_layers entries (1: skipped) with exactly min(n_skip, n_layers - 2) ones,
// never the first or the last layer.
std::vector<uint8_t> choose_skipped_layers(std::span<const float> residuals, int n_layers, int dim,
                                           int n_skip);

}  // namespace pareto::decoding
