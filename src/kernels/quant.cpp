#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "base/half.h"
#include "kernels/kquants.h"

namespace pareto::kernels {

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  PARETO_CHECK(n % kQuantBlock == 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int64_t j = 0; j < kQuantBlock; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::roundf(xb[j] * id));
    }
  }
}

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  PARETO_CHECK(n % kQuantBlock == 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float amax = 0.0f;
    float max = 0.0f;  // the value of largest magnitude, with its sign
    for (int64_t j = 0; j < kQuantBlock; ++j) {
      if (amax < std::fabs(xb[j])) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int64_t j = 0; j < kQuantBlock / 2; ++j) {
      const float x0 = xb[j] * id;
      const float x1 = xb[j + kQuantBlock / 2] * id;
      // Truncation toward zero of a value >= 0.5 after the +8.5 offset: rounds to nearest.
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_activations_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  PARETO_CHECK(n % kQuantBlock == 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int64_t j = 0; j < kQuantBlock; ++j) {
      // nearbyint under the default rounding mode: half to even, as _mm256_round_ps does.
      y[b].qs[j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));
    }
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  PARETO_CHECK(n % kQuantBlock == 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int64_t j = 0; j < kQuantBlock; ++j) y[b * kQuantBlock + j] = x[b].qs[j] * d;
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  PARETO_CHECK(n % kQuantBlock == 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int64_t j = 0; j < kQuantBlock / 2; ++j) {
      const int lo = (x[b].qs[j] & 0x0f) - 8;
      const int hi = (x[b].qs[j] >> 4) - 8;
      y[b * kQuantBlock + j] = static_cast<float>(lo) * d;
      y[b * kQuantBlock + j + kQuantBlock / 2] = static_cast<float>(hi) * d;
    }
  }
}

void dequantize_row(TensorType type, const uint8_t* src, float* dst, int64_t n) {
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::F16:
    case TensorType::BF16: {
      const bool f16 = type == TensorType::F16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    }
    case TensorType::Q8_0:
      dequantize_row_q8_0(reinterpret_cast<const BlockQ8_0*>(src), dst, n);
      return;
    case TensorType::Q4_0:
      dequantize_row_q4_0(reinterpret_cast<const BlockQ4_0*>(src), dst, n);
      return;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      dequantize_row_kquant(type, src, dst, n);
      return;
    case TensorType::Q8_K:
      dequantize_row_q8_K(reinterpret_cast<const BlockQ8_K*>(src), dst, n);
      return;
    default:
      PARETO_CHECK_MSG(false, "dequantize_row: unsupported type");
  }
}

void quantize_row(TensorType type, const float* src, uint8_t* dst, int64_t n) {
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case TensorType::F16:
    case TensorType::BF16: {
      const bool f16 = type == TensorType::F16;
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    }
    case TensorType::Q8_0:
      quantize_row_q8_0_ref(src, reinterpret_cast<BlockQ8_0*>(dst), n);
      return;
    case TensorType::Q4_0:
      quantize_row_q4_0_ref(src, reinterpret_cast<BlockQ4_0*>(dst), n);
      return;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      quantize_row_kquant(type, src, dst, n);
      return;
    case TensorType::Q8_K:
      quantize_row_q8_K(src, reinterpret_cast<BlockQ8_K*>(dst), n);
      return;
    default:
      PARETO_CHECK_MSG(false, "quantize_row: unsupported type");
  }
}

}  // namespace pareto::kernels
