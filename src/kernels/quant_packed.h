// Packed ("repacked") layouts of Q4_0 / Q8_0 weight matrices for AVX-512 VNNI, and the matmul
// kernels over them. Results are bit-identical to the existing orders (kernels_quant_simd.h):
// Q4_0 with rows % 8 == 0 in the repacked order (acc = fma((float)s_b, d_w * d_x, acc) block
// after block), Q8_0 in the order the activation terms ask for (QuantOrder, kernel_path.h): lanes
// (8 fma lanes of 4-element integer dots, then hsum8) or block (the repacked order's formula).
// Q4_0 with rows % 8 != 0 is never packed.
//
// Layout: rows are taken in groups of kPackRows = 16, one zmm lane per row. A group's bytes are
//   qs: n_blocks * kVecsPerBlock vectors of 64 bytes; vector v of block b holds, in lane r
//       (bytes 4r..4r+3), row r's raw bytes qs[4v..4v+3] of block b:
//       Q4_0 (4 vectors): those bytes' low nibbles are elements 4v..4v+3 (k-group v), their high
//         nibbles elements 16+4v.. (k-group v+4); nibbles stay unsigned 0..15.
//       Q8_0 (8 vectors): k-group v, each byte XOR 0x80 (w + 128, unsigned 0..255).
//   d:  n_blocks * 16 fp16 scales (row r at index r), then padding to a multiple of 64 bytes.
// `_mm512_dpbusd_epi32(acc, qs vector, broadcast 4 activation bytes)` then yields each row's exact
// integer k-group dot plus an offset that depends only on the activations (8 * sum(x) for Q4_0,
// 128 * sum(x_group) for Q8_0), which the kernels start the accumulator at minus.
// Rows after the last full group (rows % 16) are not packed and run on the existing kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/kernel_set.h"

namespace pareto::kernels {

inline constexpr int64_t kPackRows = 16;

// Whether this CPU runs the packed kernels (AVX-512 F, BW, VL and VNNI, checked once).
bool packed_kernels_supported();

// Whether `w` (its type and shape) has a packed layout: Q8_0, Q4_0 with rows % 8 == 0, or Q4_K /
// Q6_K with cols % 256 == 0, with at least one full group of kPackRows rows.
bool packable(const WeightView& w);

// Rows covered by the packed layout: the full groups.
inline int64_t packed_rows(const WeightView& w) {
  return w.rows / kPackRows * kPackRows;
}

// Bytes of the packed layout of `w` (0 when not packable).
size_t packed_bytes(const WeightView& w);

// Called by pack_weights with raw bytes [p, p + n) of w.data that are packed and no longer needed
// resident (e.g. ModelFile::release_pages).
using RawReleaseFn = std::function<void(const uint8_t* p, size_t n)>;

// An owned, 64-byte aligned buffer of packed matrices (one, or a whole model's); empty() when none
// was made. Buffers of 2 MiB or more are 2 MiB aligned and ask for transparent huge pages: decode
// streams every packed byte once per token, and 4 KiB pages cost a TLB miss every 4 KiB.
class PackedWeights {
 public:
  PackedWeights() = default;
  // `bytes` (a multiple of 64), uninitialized (pack_weights_into writes every byte of its range);
  // empty() if the allocation fails.
  static PackedWeights allocate(size_t bytes);
  bool empty() const { return data_ == nullptr; }
  const uint8_t* data() const { return data_.get(); }
  uint8_t* mutable_data() { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

// Packs w.data (the GGUF layout) into `dst` (packed_bytes(w) bytes, 64-byte aligned) when
// packable(w) and packed_kernels_supported(); returns whether it did. Splits the groups over
// `pool` if given. With `release_raw`, it is called chunk by chunk (about 8 MiB of raw rows) with
// the raw rows packed so far, so that the raw and packed copies of a large matrix need not be
// resident together. Set dst as WeightView::packed to use it.
bool pack_weights_into(const WeightView& w, uint8_t* dst, ThreadPool* pool = nullptr,
                       const RawReleaseFn& release_raw = {});

// pack_weights_into a buffer of its own; empty when not packable, not supported or out of memory.
PackedWeights pack_weights(const WeightView& w, ThreadPool* pool = nullptr,
                           const RawReleaseFn& release_raw = {});

// Writes row r (< packed_rows(w)) of a packed `w` in its raw GGUF layout (w.row_bytes() bytes)
// from the packed copy, so that readers of single rows (get_rows) need not touch the raw pages.
void unpack_row(const WeightView& w, int64_t r, uint8_t* dst);

// What the packed kernels need of the activations, computed once per matmul: per token and
// block, the activation scale as f32 and the integer accumulator start (Q4_0: -8 * sum(x_block);
// Q8_0 lanes order: -128 * sum(x_group) for each of the 8 k-groups; Q8_0 block order:
// -128 * sum(x_block)).
struct PackedActTerms {
  std::vector<float> dx;      // [token][block]
  std::vector<int32_t> corr;  // [token][block] (Q4_0, Q8_0 block) or [token][block][k-group]
  QuantOrder order = QuantOrder::kLanes;  // the order the Q8_0 and K-quant kernels sum in
};

// Fills `terms` for activations x (w.cols wide) meeting weights of `weight_type`: Q8_0 activations
// for Q4_0 / Q8_0 weights, Q8_K ones for Q4_K / Q6_K (prepare_packed_kquant_terms, below). Needs
// packed_kernels_supported(). Reuses terms' storage.
void prepare_packed_terms(TensorType weight_type, const PreparedActivations& x, int64_t cols,
                          PackedActTerms& terms, QuantOrder order = QuantOrder::kLanes);

// The same for K-quant weights (Q4_K / Q6_K) and Q8_K activations x: dx holds each super-block's
// activation scale d; corr holds, per token and super-block, 100 dwords: for each lane k < 8 and
// chunk pair p < 4 (chunks a = 2p, b = 2p + 1), the quants [a0, a1, b0, b1] and [a2, a3, b2, b3]
// of elements 4k .. 4k+3 and the int16 pair (-32 * sum(a0..a3), -32 * sum(b0..b3)) (Q6_K's
// q - 32); then the 4 int16 pairs (bsums[4m] + bsums[4m+1], bsums[4m+2] + bsums[4m+3]) (Q4_K
// mins). Needs packed_kernels_supported().
void prepare_packed_kquant_terms(TensorType weight_type, const PreparedActivations& x, int64_t cols,
                                 PackedActTerms& terms);

// Rows [row_begin, row_end) for every token, for a WeightView with `packed` set (requires
// packed_kernels_supported()): full groups run on the packed kernels, other rows on
// matmul_q{8,4}_0_rows_fast / matmul_kquant_rows (matmul_q8_0_block_rows_fast /
// matmul_kquant_block_rows in the block order) with the raw data. Bit-identical to those kernels
// for every row.
void matmul_packed_rows(const WeightView& w, const PreparedActivations& x,
                        const PackedActTerms& terms, int64_t row_begin, int64_t row_end, float* y);
// The same with the terms prepared here (per call), Q8_0 and K-quants summed in `order`.
void matmul_packed_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                        int64_t row_end, float* y, QuantOrder order = QuantOrder::kLanes);

// Internal to quant_packed*.cpp.
namespace packed {

inline constexpr int64_t kVecBytes = 64;  // one zmm

// 64-byte vectors per 32-element block of one group.
inline int64_t vecs_per_block(TensorType type) {
  return type == TensorType::Q8_0 ? 8 : 4;
}

// Bytes of one 256-element super-block of a packed Q4_K / Q6_K group (quant_packed_kquants.cpp):
//   Q4_K: 32 quant vectors, 8 x 16 scale bytes, 4 x 16 x 2 min bytes, 16 fp16 d, 16 fp16 dmin;
//   Q6_K: 48 quant vectors, 16 x 16 int8 scales, 16 fp16 d, padding to a multiple of 64.
inline constexpr int64_t kQ4KSuperBytes = 32 * kVecBytes + 128 + 128 + 32 + 32;  // 2368
inline constexpr int64_t kQ6KSuperBytes = 48 * kVecBytes + 256 + 32 + 32;        // 3392

// Activation dwords per token and super-block of the K-quant kernels (PackedActTerms::corr).
inline constexpr int64_t kKquantTermDwords = 100;

inline bool packed_kquant(TensorType type) {
  return type == TensorType::Q4_K || type == TensorType::Q6_K;
}

// Bytes of one group: quants, 16 fp16 scales per block, padding to a multiple of kVecBytes
// (K-quants: whole super-blocks, each a multiple of kVecBytes).
inline int64_t group_bytes(TensorType type, int64_t cols) {
  if (packed_kquant(type)) {
    return cols / 256 * (type == TensorType::Q4_K ? kQ4KSuperBytes : kQ6KSuperBytes);
  }
  const int64_t n_blocks = cols / 32;
  const int64_t bytes = n_blocks * (vecs_per_block(type) * kVecBytes + kPackRows * 2);
  return (bytes + kVecBytes - 1) / kVecBytes * kVecBytes;
}

// Rows [16 * g_begin, 16 * g_end) of a packed `w`, every token of x (quant_packed_avx512.cpp).
void matmul_groups(const WeightView& w, const PreparedActivations& x, const PackedActTerms& terms,
                   int64_t g_begin, int64_t g_end, float* y);

// --- Q4_K / Q6_K (quant_packed_kquants*.cpp) ---

// One group (16 rows) of a K-quant `w` into dst (group_bytes, zeroed by the caller).
void pack_group_kquant(const WeightView& w, int64_t group, uint8_t* dst);
// Row r of a packed K-quant `w` back in its GGUF layout.
void unpack_row_kquant(const WeightView& w, int64_t r, uint8_t* dst);
// Rows [16 * g_begin, 16 * g_end) of a packed K-quant `w`, every token of x (Q8_K).
void matmul_groups_kquant(const WeightView& w, const PreparedActivations& x,
                          const PackedActTerms& terms, int64_t g_begin, int64_t g_end, float* y);

}  // namespace packed
}  // namespace pareto::kernels
