#include "kv/kv_type.h"

#include <cstring>

#include "base/check.h"
#include "base/half.h"
#include "kernels/quant.h"
#include "kv/kv_kivi.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace pareto::kv {
namespace {

// F16 <-> F32 of one entry. The hardware conversion (F16C) is exact for widening and rounds to
// nearest even when narrowing, as f16_to_f32 / f32_to_f16 do: the same bits, 8 at a time. The
// forward decodes every entry of a sequence once per layer, so this is on the decode path.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx,f16c"))) void f16_to_f32_f16c(const uint8_t* src, float* dst, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

// The same, 16 at a time (a page of entries per call: worth the wider form).
// GCC 12 flags the _mm512_undefined_ps() pass-through inside _mm512_cvtph_ps.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f,avx,f16c"))) void f16_to_f32_avx512(const uint8_t* src, float* dst,
                                                                   int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
  }
  f16_to_f32_f16c(src + 2 * i, dst + i, n - i);
}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

bool has_avx512f() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}

__attribute__((target("avx,f16c"))) void f32_to_f16_f16c(const float* src, uint8_t* dst, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), h);
  }
  for (; i < n; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

bool has_f16c() {
  // CPUID.1:ECX bit 29 (F16C); clang's __builtin_cpu_supports does not know "f16c".
  static const bool supported = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && ((ecx >> 29) & 1u) != 0 &&
           __builtin_cpu_supports("avx");
  }();
  return supported;
}
#endif

constexpr KvType kAllTypes[] = {KvType::kF32,  KvType::kF16,   KvType::kQ8_0,
                                KvType::kQ4_0, KvType::kKivi4, KvType::kKivi2};

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
    case KvType::kKivi4:
    case KvType::kKivi2:
      break;
  }
  PARETO_CHECK_MSG(false, "KIVI KV types are encoded by KvCache, not entry by entry");
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
    case KvType::kKivi4:
      return "kivi4";
    case KvType::kKivi2:
      return "kivi2";
  }
  return "unknown";
}

Result<KvType> parse_kv_type(std::string_view name) {
  for (KvType t : kAllTypes) {
    if (kv_type_name(t) == name) return t;
  }
  return make_error_code(ErrorCode::kInvalidArgument, "unknown KV cache type '", name,
                         "' (valid: f32, f16, q8_0, q4_0, kivi4, kivi2)");
}

Status check_kv_type(KvType type, int head_dim) {
  if ((type == KvType::kQ8_0 || type == KvType::kQ4_0) && head_dim % 32 != 0) {
    return make_error_code(ErrorCode::kUnsupported, "KV cache type ", kv_type_name(type),
                           " needs a head dimension that is a multiple of 32; this model's is ",
                           head_dim, " (use f32 or f16)");
  }
  return ok();
}

int kivi_bits(KvType type) {
  return type == KvType::kKivi4 ? 4 : type == KvType::kKivi2 ? 2 : 0;
}

size_t kv_entry_bytes(KvType type, int head_dim) {
  return static_cast<size_t>(row_bytes(tensor_type(type), head_dim));
}

size_t kv_key_bytes(KvType type, int head_dim) {
  const int bits = kivi_bits(type);
  return bits ? kivi::key_code_bytes(bits, head_dim) : kv_entry_bytes(type, head_dim);
}

size_t kv_value_bytes(KvType type, int head_dim) {
  const int bits = kivi_bits(type);
  return bits ? kivi::value_bytes(bits, head_dim) : kv_entry_bytes(type, head_dim);
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
#if defined(__x86_64__) && defined(__GNUC__)
      if (has_f16c()) return f32_to_f16_f16c(src, dst, head_dim);
#endif
      kernels::quantize_row(TensorType::F16, src, dst, head_dim);
      return;
    case KvType::kKivi4:
    case KvType::kKivi2:
      PARETO_CHECK_MSG(false, "kv_encode: KIVI entries are encoded by KvCache");
  }
}

void kv_decode(KvType type, const uint8_t* src, float* dst, int head_dim) {
  if (type == KvType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(head_dim) * sizeof(float));
    return;
  }
#if defined(__x86_64__) && defined(__GNUC__)
  if (type == KvType::kF16 && has_f16c()) {
    return has_avx512f() ? f16_to_f32_avx512(src, dst, head_dim)
                         : f16_to_f32_f16c(src, dst, head_dim);
  }
#endif
  kernels::dequantize_row(tensor_type(type), src, dst, head_dim);
}

}  // namespace pareto::kv
