// Constants and helpers shared by the GGUF reader and writer (internal to pareto_formats).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/tensor_type.h"

namespace pareto::formats {

constexpr uint32_t kGgufVersion = 3;  // what the writer produces
constexpr uint64_t kDefaultAlignment = 32;
constexpr std::string_view kAlignmentKey = "general.alignment";
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// Smallest possible encodings, used to bound header counts before allocating anything:
// a key/value is key length (8) + value type (4) + at least one byte of value;
// a tensor info is name length (8) + n_dims (4) + type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 24;

// Bytes of a tensor of `type` and `shape` (shape[0] contiguous). Fails, naming the problem, for
// an unknown type, more than kMaxDims dimensions, a negative dimension, shape[0] not a multiple
// of the block size, or an element or byte count above 2^63-1.
Result<uint64_t> checked_tensor_nbytes(TensorType type, const std::vector<int64_t>& shape);

}  // namespace pareto::formats
