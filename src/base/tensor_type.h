// Tensor element types, numbered as GGUF numbers them (ggml_type), with their block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pareto {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TensorTypeTraits {
  std::string_view name;
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
};

// Traits of a type id as read from a file; nullopt for ids GGUF does not define.
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type_id);
TensorTypeTraits traits(TensorType t);
std::string_view type_name(TensorType t);
// Whether the model code has kernels for this type (F32, F16, BF16, Q8_0, Q4_0 for now).
bool is_supported_weight_type(TensorType t);
// "F32, F16, BF16, Q8_0, Q4_0": for error messages.
std::string_view supported_weight_types_list();
// Parses "Q4_0", "f16", ... (case-insensitive).
std::optional<TensorType> parse_type_name(std::string_view name);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(TensorType t, int64_t n) {
  const auto tr = traits(t);
  return n / tr.block_size * tr.block_bytes;
}

}  // namespace pareto
