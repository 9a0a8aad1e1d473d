// Packed layouts of Q4_K / Q6_K matrices (16 rows per group, one zmm lane per row), the
// conversions between them and the GGUF blocks, and the Q8_K activation terms of their kernels
// (quant_packed_kquants_avx512.cpp). A group is n_blocks super-block records, each a multiple of
// 64 bytes (offsets in bytes; "lane r" = bytes 4r..4r+3 of a 64-byte vector = row r):
// Quants are arranged per float lane k < 8 (AVX2 order: elements 4k .. 4k+3 of each 32-element
// chunk) and chunk pair p < 4 (chunks 2p, 2p + 1) as two logical 4-byte vectors per row (see
// element()): V0 = [a0, a1, b0, b1], V1 = [a2, a3, b2, b3] (a: chunk 2p, b: chunk 2p + 1).
//   Q4_K (kQ4KSuperBytes = 2368; Q4_K sub-blocks are the chunks):
//     [0, 2048)     vector 4k + p: lane r byte i = V0[i] | V1[i] << 4 of row r;
//     [2048, 2176)  scales: byte 32p + 2r + e = scale of sub-block 2p + e of row r (6-bit);
//     [2176, 2304)  mins: byte 32m + 2r + e = min of sub-block 2m + e of row r;
//     [2304, 2336)  fp16 d of row r at 2r; [2336, 2368) fp16 dmin of row r at 2r.
//   Q6_K (kQ6KSuperBytes = 3392):
//     [0, 3072)     vectors 6k + 3h + {0, 1, 2} (h < 2): A, B, C of pack_q6_K for pairs 2h, 2h+1;
//     [3072, 3328)  scales: byte 32(4kh + p) + 2r + e = int8 scale of the sub-block of chunk
//                   2p + e for lanes k with k / 4 == kh (sub-block 4p + 2e + kh) of row r;
//     [3328, 3360)  fp16 d of row r at 2r; [3360, 3392) zero padding.
// Every raw byte is kept (the Q4_K 12-byte scales are a bijection of the 16 6-bit values), so
// unpack_row restores the raw rows exactly.
#include <cstddef>
#include <cstring>

#include "base/check.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"
#include "kernels/quant_packed.h"

namespace pareto::kernels::packed {
namespace {

constexpr int64_t kQ4KScales = 2048, kQ4KMins = 2176, kQ4KD = 2304, kQ4KDmin = 2336;
constexpr int64_t kQ6KScales = 3072, kQ6KD = 3328;

// Element of byte i < 4 of logical vector v < 2 of (lane k, chunk pair p): the AVX2 lane k
// elements 4k .. 4k+3 of 32-element chunks 2p and 2p + 1, as [a0, a1, b0, b1] (v = 0) and
// [a2, a3, b2, b3] (v = 1), so that vpmaddubsw yields (chunk 2p, chunk 2p + 1) int16 pairs.
constexpr int element(int k, int p, int v, int i) {
  return 32 * (2 * p + i / 2) + 4 * k + 2 * v + i % 2;
}

// The inverse of kquant_scale_min over the 8 sub-blocks: the 12 packed scale bytes.
void pack_scales_mins(const uint8_t* sc, const uint8_t* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

void pack_q4_K(const BlockQ4_K& blk, int64_t r, uint8_t* sb) {
  uint8_t w[kQK_K];  // 4-bit values in element order
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      w[64 * c + l] = blk.qs[32 * c + l] & 0xF;
      w[64 * c + 32 + l] = blk.qs[32 * c + l] >> 4;
    }
  }
  for (int k = 0; k < 8; ++k) {
    for (int p = 0; p < 4; ++p) {
      uint8_t* out = sb + (4 * k + p) * kVecBytes + 4 * r;
      for (int i = 0; i < 4; ++i) {
        out[i] = static_cast<uint8_t>(w[element(k, p, 0, i)] | (w[element(k, p, 1, i)] << 4));
      }
    }
  }
  for (int s = 0; s < 8; ++s) {
    uint8_t sc = 0, m = 0;
    kquant_scale_min(blk.scales, s, &sc, &m);
    sb[kQ4KScales + 32 * (s / 2) + 2 * r + s % 2] = sc;
    sb[kQ4KMins + 32 * (s / 2) + 2 * r + s % 2] = m;
  }
  std::memcpy(sb + kQ4KD + 2 * r, &blk.d, 2);
  std::memcpy(sb + kQ4KDmin + 2 * r, &blk.dmin, 2);
}

void unpack_q4_K(const uint8_t* sb, int64_t r, BlockQ4_K& blk) {
  uint8_t w[kQK_K];
  for (int k = 0; k < 8; ++k) {
    for (int p = 0; p < 4; ++p) {
      const uint8_t* in = sb + (4 * k + p) * kVecBytes + 4 * r;
      for (int i = 0; i < 4; ++i) {
        w[element(k, p, 0, i)] = in[i] & 0xF;
        w[element(k, p, 1, i)] = in[i] >> 4;
      }
    }
  }
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      blk.qs[32 * c + l] = static_cast<uint8_t>(w[64 * c + l] | (w[64 * c + 32 + l] << 4));
    }
  }
  uint8_t sc[8], m[8];
  for (int s = 0; s < 8; ++s) {
    sc[s] = sb[kQ4KScales + 32 * (s / 2) + 2 * r + s % 2];
    m[s] = sb[kQ4KMins + 32 * (s / 2) + 2 * r + s % 2];
  }
  pack_scales_mins(sc, m, blk.scales);
  std::memcpy(&blk.d, sb + kQ4KD + 2 * r, 2);
  std::memcpy(&blk.dmin, sb + kQ4KDmin + 2 * r, 2);
}

// Q6_K vectors (k, h): logical vectors V_j (j < 4) = vector v = j % 2 of pair p = 2h + j / 2, of
// 6-bit values, stored as A = V0 | V2 << 4, B = V1 | V3 << 4 (low 4 bits each) and
// C = V0 >> 4 | (V1 >> 4) << 2 | (V2 >> 4) << 4 | (V3 >> 4) << 6.
void pack_q6_K(const BlockQ6_K& blk, int64_t r, uint8_t* sb) {
  uint8_t q[kQK_K];  // 6-bit values in element order (q, not q - 32)
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* ql = blk.ql + 64 * h;
      const int hb = blk.qh[32 * h + l];
      q[128 * h + l] = static_cast<uint8_t>((ql[l] & 0xF) | ((hb & 3) << 4));
      q[128 * h + 32 + l] = static_cast<uint8_t>((ql[l + 32] & 0xF) | (((hb >> 2) & 3) << 4));
      q[128 * h + 64 + l] = static_cast<uint8_t>((ql[l] >> 4) | (((hb >> 4) & 3) << 4));
      q[128 * h + 96 + l] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((hb >> 6) & 3) << 4));
    }
  }
  for (int k = 0; k < 8; ++k) {
    for (int h = 0; h < 2; ++h) {
      uint8_t* out = sb + (6 * k + 3 * h) * kVecBytes + 4 * r;
      for (int i = 0; i < 4; ++i) {
        uint8_t v[4];
        for (int j = 0; j < 4; ++j) v[j] = q[element(k, 2 * h + j / 2, j % 2, i)];
        out[i] = static_cast<uint8_t>((v[0] & 0xF) | ((v[2] & 0xF) << 4));
        out[kVecBytes + i] = static_cast<uint8_t>((v[1] & 0xF) | ((v[3] & 0xF) << 4));
        out[2 * kVecBytes + i] = static_cast<uint8_t>((v[0] >> 4) | ((v[1] >> 4) << 2) |
                                                      ((v[2] >> 4) << 4) | ((v[3] >> 4) << 6));
      }
    }
  }
  for (int j = 0; j < 16; ++j) {
    // Sub-block j = 4p + 2e + kh: pair p's chunk 2p + e, lanes k with k / 4 == kh.
    const int p = j / 4, e = (j / 2) % 2, kh = j % 2;
    sb[kQ6KScales + 32 * (4 * kh + p) + 2 * r + e] = static_cast<uint8_t>(blk.scales[j]);
  }
  std::memcpy(sb + kQ6KD + 2 * r, &blk.d, 2);
}

void unpack_q6_K(const uint8_t* sb, int64_t r, BlockQ6_K& blk) {
  uint8_t q[kQK_K];
  for (int k = 0; k < 8; ++k) {
    for (int h = 0; h < 2; ++h) {
      const uint8_t* in = sb + (6 * k + 3 * h) * kVecBytes + 4 * r;
      for (int i = 0; i < 4; ++i) {
        const int a = in[i], b = in[kVecBytes + i], c = in[2 * kVecBytes + i];
        const int v[4] = {(a & 0xF) | ((c & 3) << 4), (b & 0xF) | (((c >> 2) & 3) << 4),
                          (a >> 4) | (((c >> 4) & 3) << 4), (b >> 4) | (((c >> 6) & 3) << 4)};
        for (int j = 0; j < 4; ++j)
          q[element(k, 2 * h + j / 2, j % 2, i)] = static_cast<uint8_t>(v[j]);
      }
    }
  }
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* e = q + 128 * h;
      blk.ql[64 * h + l] = static_cast<uint8_t>((e[l] & 0xF) | ((e[l + 64] & 0xF) << 4));
      blk.ql[64 * h + 32 + l] = static_cast<uint8_t>((e[l + 32] & 0xF) | ((e[l + 96] & 0xF) << 4));
      blk.qh[32 * h + l] = static_cast<uint8_t>((e[l] >> 4) | ((e[l + 32] >> 4) << 2) |
                                                ((e[l + 64] >> 4) << 4) | ((e[l + 96] >> 4) << 6));
    }
  }
  for (int j = 0; j < 16; ++j) {
    const int p = j / 4, e = (j / 2) % 2, kh = j % 2;
    blk.scales[j] = static_cast<int8_t>(sb[kQ6KScales + 32 * (4 * kh + p) + 2 * r + e]);
  }
  std::memcpy(&blk.d, sb + kQ6KD + 2 * r, 2);
}

int64_t super_bytes(TensorType type) {
  return type == TensorType::Q4_K ? kQ4KSuperBytes : kQ6KSuperBytes;
}

}  // namespace

void pack_group_kquant(const WeightView& w, int64_t group, uint8_t* dst) {
  const int64_t nb = w.cols / kQK_K;
  const int64_t sbytes = super_bytes(w.type);
  for (int64_t r = 0; r < kPackRows; ++r) {
    const uint8_t* row = w.row(group * kPackRows + r);
    for (int64_t b = 0; b < nb; ++b) {
      if (w.type == TensorType::Q4_K) {
        pack_q4_K(reinterpret_cast<const BlockQ4_K*>(row)[b], r, dst + b * sbytes);
      } else {
        pack_q6_K(reinterpret_cast<const BlockQ6_K*>(row)[b], r, dst + b * sbytes);
      }
    }
  }
}

void unpack_row_kquant(const WeightView& w, int64_t r, uint8_t* dst) {
  const int64_t nb = w.cols / kQK_K;
  const int64_t sbytes = super_bytes(w.type);
  const uint8_t* src = w.packed + r / kPackRows * group_bytes(w.type, w.cols);
  const int64_t lane = r % kPackRows;
  for (int64_t b = 0; b < nb; ++b) {
    if (w.type == TensorType::Q4_K) {
      BlockQ4_K blk;
      unpack_q4_K(src + b * sbytes, lane, blk);
      std::memcpy(dst + b * int64_t{sizeof(blk)}, &blk, sizeof(blk));
    } else {
      BlockQ6_K blk;
      unpack_q6_K(src + b * sbytes, lane, blk);
      std::memcpy(dst + b * int64_t{sizeof(blk)}, &blk, sizeof(blk));
    }
  }
}

}  // namespace pareto::kernels::packed

namespace pareto::kernels {
namespace {

// Two int16 values (lo, hi) as one dword.
int32_t pair16(int lo, int hi) {
  const auto v = static_cast<uint32_t>(static_cast<uint16_t>(lo)) |
                 (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
  return static_cast<int32_t>(v);
}

}  // namespace

void prepare_packed_kquant_terms(TensorType weight_type, const PreparedActivations& x, int64_t cols,
                                 PackedActTerms& terms) {
  PARETO_CHECK(packed::packed_kquant(weight_type) && x.type == TensorType::Q8_K &&
               cols % kQK_K == 0 && x.row_bytes == row_bytes(TensorType::Q8_K, cols));
  const int64_t nb = cols / kQK_K;
  terms.dx.resize(static_cast<size_t>(x.n_tokens * nb));
  terms.corr.resize(static_cast<size_t>(x.n_tokens * nb * packed::kKquantTermDwords));
  for (int64_t t = 0; t < x.n_tokens; ++t) {
    const auto* y = reinterpret_cast<const BlockQ8_K*>(x.row(t));
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t i = t * nb + b;
      terms.dx[static_cast<size_t>(i)] = y[b].d;
      int32_t* out = terms.corr.data() + i * packed::kKquantTermDwords;
      const int8_t* qs = y[b].qs;
      for (int k = 0; k < 8; ++k) {
        for (int p = 0; p < 4; ++p) {
          // Chunks a = 2p, b = 2p + 1, elements 4k .. 4k+3 of each.
          const int8_t* a = qs + 64 * p + 4 * k;
          const int8_t* bb = a + 32;
          const int8_t x0[4] = {a[0], a[1], bb[0], bb[1]};
          const int8_t x1[4] = {a[2], a[3], bb[2], bb[3]};
          int32_t* d = out + 3 * (4 * k + p);
          std::memcpy(d, x0, 4);
          std::memcpy(d + 1, x1, 4);
          const int sa = -32 * (a[0] + a[1] + a[2] + a[3]);
          const int sb = -32 * (bb[0] + bb[1] + bb[2] + bb[3]);
          d[2] = pair16(sa, sb);
        }
      }
      for (int m = 0; m < 4; ++m) {
        out[96 + m] = pair16(y[b].bsums[4 * m] + y[b].bsums[4 * m + 1],
                             y[b].bsums[4 * m + 2] + y[b].bsums[4 * m + 3]);
      }
    }
  }
}

}  // namespace pareto::kernels
