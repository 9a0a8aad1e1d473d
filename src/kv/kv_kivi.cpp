#include "kv/kv_kivi.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "base/check.h"
#include "base/half.h"

namespace pareto::kv::kivi {
namespace {

constexpr float kF16Max = 65504.0f;

int levels(int bits) {
  PARETO_CHECK(bits == 2 || bits == 4);
  return (1 << bits) - 1;
}

// The next f16 toward -inf / +inf from h (finite, not the extreme).
uint16_t f16_down(uint16_t h) {
  if (h == 0x0000 || h == 0x8000) return 0x8001;  // +-0 -> the smallest negative subnormal
  return (h & 0x8000) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
}
uint16_t f16_up(uint16_t h) {
  if (h == 0x0000 || h == 0x8000) return 0x0001;
  return (h & 0x8000) ? static_cast<uint16_t>(h - 1) : static_cast<uint16_t>(h + 1);
}

// f16 at or below / at or above v (v clamped into f16's finite range).
uint16_t f16_at_or_below(float v) {
  v = std::clamp(v, -kF16Max, kF16Max);
  uint16_t h = f32_to_f16(v);
  if (f16_to_f32(h) > v) h = f16_down(h);
  return h;
}
uint16_t f16_at_or_above(float v) {
  v = std::clamp(v, -kF16Max, kF16Max);
  uint16_t h = f32_to_f16(v);
  if (f16_to_f32(h) < v) h = f16_up(h);
  return h;
}

// Minimum (rounded down) and scale (rounded up) of values [lo, hi].
void range_params(int bits, float lo, float hi, uint16_t& min_h, uint16_t& scale_h) {
  min_h = f16_at_or_below(lo);
  const float span = std::max(0.0f, std::min(hi, kF16Max) - f16_to_f32(min_h));
  scale_h = span > 0.0f ? f16_at_or_above(span / static_cast<float>(levels(bits))) : 0;
}

uint8_t code_of(int bits, float x, float min, float scale) {
  if (!(scale > 0.0f)) return 0;
  const float c = std::nearbyint((x - min) / scale);
  return static_cast<uint8_t>(std::clamp(c, 0.0f, static_cast<float>(levels(bits))));
}

// Codes of n elements: byte i % stride holds element i in bits (i / stride) * bits, stride =
// ceil(n / (8 / bits)), so elements `stride` apart share a byte (as ggml's Q4_0 pairs elements 16
// apart) and unpacking one shift is a contiguous loop the compiler vectorizes.
int code_stride(int bits, int n) {
  const int per_byte = 8 / bits;
  return (n + per_byte - 1) / per_byte;
}

void put_code(int bits, uint8_t* codes, int n, int i, uint8_t c) {
  const int stride = code_stride(bits, n);
  const int shift = (i / stride) * bits;
  uint8_t& b = codes[i % stride];
  b = static_cast<uint8_t>((b & ~(levels(bits) << shift)) | (c << shift));
}

size_t packed_bytes(int bits, int n) {
  return static_cast<size_t>(code_stride(bits, n));
}

// out[i] = min[i] + code(i) * scale[i] over n elements (per-channel parameters).
void decode_codes(int bits, const uint8_t* codes, int n, const float* min, const float* scale,
                  float* out) {
  const int stride = code_stride(bits, n), per_byte = 8 / bits;
  const unsigned mask = static_cast<unsigned>(levels(bits));
  for (int k = 0; k < per_byte; ++k) {
    const int first = k * stride, count = std::min(stride, n - first), shift = k * bits;
    for (int i = 0; i < count; ++i) {
      out[first + i] =
          min[first + i] + static_cast<float>((codes[i] >> shift) & mask) * scale[first + i];
    }
  }
}

// The same with one minimum and scale for all n.
void decode_codes(int bits, const uint8_t* codes, int n, float min, float scale, float* out) {
  const int stride = code_stride(bits, n), per_byte = 8 / bits;
  const unsigned mask = static_cast<unsigned>(levels(bits));
  for (int k = 0; k < per_byte; ++k) {
    const int first = k * stride, count = std::min(stride, n - first), shift = k * bits;
    for (int i = 0; i < count; ++i) {
      out[first + i] = min + static_cast<float>((codes[i] >> shift) & mask) * scale;
    }
  }
}

}  // namespace

size_t key_code_bytes(int bits, int head_dim) {
  levels(bits);
  return packed_bytes(bits, head_dim);
}

size_t value_bytes(int bits, int head_dim) {
  size_t bytes = 0;
  for (int c = 0; c < head_dim; c += kValueGroup) {
    bytes += 4 + packed_bytes(bits, std::min(kValueGroup, head_dim - c));
  }
  return bytes;
}

void key_group_params(int bits, const float* keys, int n, int head_dim, uint16_t* params) {
  PARETO_CHECK(n >= 1);
  for (int c = 0; c < head_dim; ++c) {
    float lo = std::numeric_limits<float>::infinity();
    float hi = -lo;
    for (int t = 0; t < n; ++t) {
      lo = std::min(lo, keys[static_cast<size_t>(t) * head_dim + c]);
      hi = std::max(hi, keys[static_cast<size_t>(t) * head_dim + c]);
    }
    range_params(bits, lo, hi, params[c], params[head_dim + c]);
  }
}

void encode_key(int bits, const float* key, const uint16_t* params, int head_dim, uint8_t* codes) {
  std::memset(codes, 0, key_code_bytes(bits, head_dim));
  for (int c = 0; c < head_dim; ++c) {
    put_code(bits, codes, head_dim, c,
             code_of(bits, key[c], f16_to_f32(params[c]), f16_to_f32(params[head_dim + c])));
  }
}

void widen_key_params(const uint16_t* params, int head_dim, float* min, float* scale) {
  for (int c = 0; c < head_dim; ++c) {
    min[c] = f16_to_f32(params[c]);
    scale[c] = f16_to_f32(params[head_dim + c]);
  }
}

void decode_key(int bits, const uint8_t* codes, const float* min, const float* scale, int head_dim,
                float* out) {
  decode_codes(bits, codes, head_dim, min, scale, out);
}

void decode_key(int bits, const uint8_t* codes, const uint16_t* params, int head_dim, float* out) {
  std::vector<float> min(static_cast<size_t>(head_dim)), scale(static_cast<size_t>(head_dim));
  widen_key_params(params, head_dim, min.data(), scale.data());
  decode_key(bits, codes, min.data(), scale.data(), head_dim, out);
}

void encode_value(int bits, const float* value, int head_dim, uint8_t* out) {
  for (int c0 = 0; c0 < head_dim; c0 += kValueGroup) {
    const int n = std::min(kValueGroup, head_dim - c0);
    const auto [lo, hi] = std::minmax_element(value + c0, value + c0 + n);
    uint16_t min_h = 0, scale_h = 0;
    range_params(bits, *lo, *hi, min_h, scale_h);
    std::memcpy(out, &scale_h, 2);
    std::memcpy(out + 2, &min_h, 2);
    uint8_t* codes = out + 4;
    std::memset(codes, 0, packed_bytes(bits, n));
    const float min = f16_to_f32(min_h), scale = f16_to_f32(scale_h);
    for (int i = 0; i < n; ++i) {
      put_code(bits, codes, n, i, code_of(bits, value[c0 + i], min, scale));
    }
    out = codes + packed_bytes(bits, n);
  }
}

void decode_value(int bits, const uint8_t* in, int head_dim, float* out) {
  for (int c0 = 0; c0 < head_dim; c0 += kValueGroup) {
    const int n = std::min(kValueGroup, head_dim - c0);
    uint16_t scale_h = 0, min_h = 0;
    std::memcpy(&scale_h, in, 2);
    std::memcpy(&min_h, in + 2, 2);
    const float min = f16_to_f32(min_h), scale = f16_to_f32(scale_h);
    const uint8_t* codes = in + 4;
    decode_codes(bits, codes, n, min, scale, out + c0);
    in = codes + packed_bytes(bits, n);
  }
}

}  // namespace pareto::kv::kivi
