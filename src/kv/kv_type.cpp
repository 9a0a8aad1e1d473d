#include "kv/kv_type.h"

#include <cstring>

#include "base/check.h"
#include "kernels/quant.h"

namespace pareto::kv {
namespace {

constexpr KvType kAllTypes[] = {KvType::kF32, KvType::kF16, KvType::kQ8_0, KvType::kQ4_0};

TensorType tensor_type(KvType type) {
  switch (type) {
    case KvType::kF32:
      return TensorType::F32;
    case KvType::kF16:
      return TensorType::F16;
    case KvType::kQ8_0:
      return TensorType::Q8_0;
    case KvType::kQ4_0:
      return TensorType::Q4_0;
  }
  return TensorType::F32;
}

}  // namespace

std::string_view kv_type_name(KvType type) {
  switch (type) {
    case KvType::kF32:
      return "f32";
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
    case KvType::kQ4_0:
      return "q4_0";
  }
  return "unknown";
}

Result<KvType> parse_kv_type(std::string_view name) {
  for (KvType t : kAllTypes) {
    if (kv_type_name(t) == name) return t;
  }
  return make_error_code(ErrorCode::kInvalidArgument, "unknown KV cache type '", name,
                         "' (valid: f32, f16, q8_0, q4_0)");
}

Status check_kv_type(KvType type, int head_dim) {
  if ((type == KvType::kQ8_0 || type == KvType::kQ4_0) && head_dim % 32 != 0) {
    return make_error_code(ErrorCode::kUnsupported, "KV cache type ", kv_type_name(type),
                           " needs a head dimension that is a multiple of 32; this model's is ",
                           head_dim, " (use f32 or f16)");
  }
  return ok();
}

size_t kv_entry_bytes(KvType type, int head_dim) {
  return static_cast<size_t>(row_bytes(tensor_type(type), head_dim));
}

void kv_encode(KvType type, const float* src, uint8_t* dst, int head_dim) {
  switch (type) {
    case KvType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(head_dim) * sizeof(float));
      return;
    case KvType::kQ8_0:
      kernels::quantize_row_q8_0_ref(src, reinterpret_cast<kernels::BlockQ8_0*>(dst), head_dim);
      return;
    case KvType::kQ4_0:
      kernels::quantize_row_q4_0_ref(src, reinterpret_cast<kernels::BlockQ4_0*>(dst), head_dim);
      return;
    case KvType::kF16:
      kernels::quantize_row(TensorType::F16, src, dst, head_dim);
      return;
  }
}

void kv_decode(KvType type, const uint8_t* src, float* dst, int head_dim) {
  if (type == KvType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(head_dim) * sizeof(float));
    return;
  }
  kernels::dequantize_row(tensor_type(type), src, dst, head_dim);
}

}  // namespace pareto::kv
