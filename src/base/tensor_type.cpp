#include "base/tensor_type.h"

#include <array>
#include <cctype>
#include <string>

#include "base/check.h"

namespace pareto {
namespace {

struct Entry {
  uint32_t id;
  TensorTypeTraits traits;
};

// Block sizes and bytes from GGUF's definition of each block struct (ggml-common.h).
constexpr std::array<Entry, 20> kTypes{{
    {0, {"F32", 1, 4}},       {1, {"F16", 1, 2}},       {2, {"Q4_0", 32, 18}},
    {3, {"Q4_1", 32, 20}},    {6, {"Q5_0", 32, 22}},    {7, {"Q5_1", 32, 24}},
    {8, {"Q8_0", 32, 34}},    {9, {"Q8_1", 32, 36}},    {10, {"Q2_K", 256, 84}},
    {11, {"Q3_K", 256, 110}}, {12, {"Q4_K", 256, 144}}, {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}}, {15, {"Q8_K", 256, 292}}, {24, {"I8", 1, 1}},
    {25, {"I16", 1, 2}},      {26, {"I32", 1, 4}},      {27, {"I64", 1, 8}},
    {28, {"F64", 1, 8}},      {30, {"BF16", 1, 2}},
}};

}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type_id) {
  for (const auto& e : kTypes) {
    if (e.id == type_id) return e.traits;
  }
  return std::nullopt;
}

TensorTypeTraits traits(TensorType t) {
  // Indexed by id (kernels ask for a matrix's row size per row): built once, read-only after.
  static const auto kById = [] {
    std::array<std::optional<TensorTypeTraits>, 64> by_id{};
    for (const auto& e : kTypes) {
      if (e.id < by_id.size()) by_id[e.id] = e.traits;
    }
    return by_id;
  }();
  const auto id = static_cast<uint32_t>(t);
  PARETO_CHECK(id < kById.size() && kById[id].has_value());
  return *kById[id];
}

std::string_view type_name(TensorType t) {
  return traits(t).name;
}

bool is_supported_weight_type(TensorType t) {
  switch (t) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
    case TensorType::Q8_0:
    case TensorType::Q4_0:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      return true;
    default:
      return false;
  }
}

std::string_view supported_weight_types_list() {
  return "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K";
}

std::optional<TensorType> parse_type_name(std::string_view name) {
  std::string upper(name);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& e : kTypes) {
    if (e.traits.name == upper) return static_cast<TensorType>(e.id);
  }
  return std::nullopt;
}

}  // namespace pareto
