// Packing of Q4_0 / Q8_0 (and, via quant_packed_kquants.cpp, Q4_K / Q6_K) matrices into the layout
// of quant_packed.h, and the row-range entry that splits a range between the packed kernels
// (quant_packed_avx512.cpp) and the existing ones.
#include "kernels/quant_packed.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "base/check.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"

namespace pareto::kernels {
namespace {

// One group (16 rows) of `w` into `dst`: see the layout in quant_packed.h.
void pack_group(const WeightView& w, int64_t group, uint8_t* dst) {
  if (packed::packed_kquant(w.type)) return packed::pack_group_kquant(w, group, dst);
  const bool q8 = w.type == TensorType::Q8_0;
  const int64_t n_blocks = w.cols / kQuantBlock;
  const int64_t vecs = packed::vecs_per_block(w.type);
  const int64_t block_bytes = traits(w.type).block_bytes;
  auto* d = reinterpret_cast<uint16_t*>(dst + n_blocks * vecs * packed::kVecBytes);
  for (int64_t r = 0; r < kPackRows; ++r) {
    const uint8_t* row = w.row(group * kPackRows + r);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint8_t* block = row + b * block_bytes;  // fp16 d, then the quants
      std::memcpy(&d[b * kPackRows + r], block, sizeof(uint16_t));
      const uint8_t* qs = block + sizeof(uint16_t);
      uint8_t* out = dst + b * vecs * packed::kVecBytes + 4 * r;
      for (int64_t v = 0; v < vecs; ++v) {
        for (int i = 0; i < 4; ++i) {
          const uint8_t q = qs[4 * v + i];
          out[v * packed::kVecBytes + i] = q8 ? static_cast<uint8_t>(q ^ 0x80u) : q;
        }
      }
    }
  }
}

}  // namespace

bool packable(const WeightView& w) {
  if (w.rows < kPackRows || w.cols <= 0 || w.cols % kQuantBlock != 0) return false;
  if (w.type == TensorType::Q8_0) return true;
  if (packed::packed_kquant(w.type)) return w.cols % kQK_K == 0;
  return w.type == TensorType::Q4_0 && w.rows % 8 == 0;  // the repacked order
}

size_t packed_bytes(const WeightView& w) {
  if (!packable(w)) return 0;
  return static_cast<size_t>(packed_rows(w) / kPackRows * packed::group_bytes(w.type, w.cols));
}

void PackedWeights::Free::operator()(uint8_t* p) const {
  std::free(p);
}

PackedWeights PackedWeights::allocate(size_t bytes) {
  PARETO_CHECK(bytes % packed::kVecBytes == 0);
  constexpr size_t kHugePage = size_t{2} << 20;
  const bool huge = bytes >= kHugePage;
  const size_t alloc = huge ? (bytes + kHugePage - 1) / kHugePage * kHugePage : bytes;
  PackedWeights out;
  if (bytes == 0) return out;
  out.data_.reset(
      static_cast<uint8_t*>(std::aligned_alloc(huge ? kHugePage : packed::kVecBytes, alloc)));
  if (out.data_ == nullptr) return out;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // A hint, before the first touch: without transparent huge pages the buffer still works.
  if (huge) ::madvise(out.data_.get(), alloc, MADV_HUGEPAGE);
#endif
  out.size_ = bytes;
  return out;
}

PackedWeights pack_weights(const WeightView& w, ThreadPool* pool, const RawReleaseFn& release_raw) {
  if (!packable(w) || !packed_kernels_supported()) return {};
  PackedWeights out = PackedWeights::allocate(packed_bytes(w));
  if (out.empty() || !pack_weights_into(w, out.mutable_data(), pool, release_raw)) return {};
  return out;
}

bool pack_weights_into(const WeightView& w, uint8_t* dst, ThreadPool* pool,
                       const RawReleaseFn& release_raw) {
  if (!packable(w) || !packed_kernels_supported()) return false;
  PARETO_CHECK(reinterpret_cast<uintptr_t>(dst) % packed::kVecBytes == 0);
  const int64_t group_bytes = packed::group_bytes(w.type, w.cols);
  const auto pack_groups = [&](size_t begin, size_t end, int) {
    for (size_t g = begin; g < end; ++g) {
      uint8_t* gdst = dst + static_cast<int64_t>(g) * group_bytes;
      // Zero the padding so the whole buffer is defined.
      std::memset(gdst, 0, static_cast<size_t>(group_bytes));
      pack_group(w, static_cast<int64_t>(g), gdst);
    }
  };
  // Chunks of about 8 MiB of raw rows, released after packing when asked.
  const int64_t n_groups = packed_rows(w) / kPackRows;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{8} << 20) / (kPackRows * w.row_bytes()));
  for (int64_t g0 = 0; g0 < n_groups; g0 += chunk) {
    const int64_t g1 = std::min(n_groups, g0 + chunk);
    if (pool != nullptr) {
      pool->parallel_for(static_cast<size_t>(g1 - g0), [&](size_t begin, size_t end, int i) {
        pack_groups(static_cast<size_t>(g0) + begin, static_cast<size_t>(g0) + end, i);
      });
    } else {
      pack_groups(static_cast<size_t>(g0), static_cast<size_t>(g1), 0);
    }
    // From the matrix start, so the pages straddling chunk boundaries go too.
    if (release_raw) release_raw(w.data, static_cast<size_t>(g1 * kPackRows * w.row_bytes()));
  }
  return true;
}

void unpack_row(const WeightView& w, int64_t r, uint8_t* dst) {
  PARETO_CHECK(w.packed != nullptr && packable(w) && r >= 0 && r < packed_rows(w));
  if (packed::packed_kquant(w.type)) return packed::unpack_row_kquant(w, r, dst);
  const bool q8 = w.type == TensorType::Q8_0;
  const int64_t n_blocks = w.cols / kQuantBlock;
  const int64_t vecs = packed::vecs_per_block(w.type);
  const int64_t block_bytes = traits(w.type).block_bytes;
  const int64_t lane = r % kPackRows;
  const uint8_t* src = w.packed + r / kPackRows * packed::group_bytes(w.type, w.cols);
  const uint8_t* d = src + n_blocks * vecs * packed::kVecBytes;
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* block = dst + b * block_bytes;
    std::memcpy(block, d + (b * kPackRows + lane) * 2, sizeof(uint16_t));
    const uint8_t* in = src + b * vecs * packed::kVecBytes + 4 * lane;
    for (int64_t v = 0; v < vecs; ++v) {
      for (int i = 0; i < 4; ++i) {
        const uint8_t q = in[v * packed::kVecBytes + i];
        block[2 + 4 * v + i] = q8 ? static_cast<uint8_t>(q ^ 0x80u) : q;
      }
    }
  }
}

void matmul_packed_rows(const WeightView& w, const PreparedActivations& x,
                        const PackedActTerms& terms, int64_t row_begin, int64_t row_end, float* y) {
  PARETO_CHECK(w.packed != nullptr && packable(w));
  const bool kq = packed::packed_kquant(w.type);
  const bool block = terms.order == QuantOrder::kBlock;
  const MatmulRowsFn raw = kq ? (block ? matmul_kquant_block_rows : matmul_kquant_rows)
                           : w.type == TensorType::Q8_0
                               ? (block ? matmul_q8_0_block_rows_fast : matmul_q8_0_rows_fast)
                               : matmul_q4_0_rows_fast;
  const auto groups = kq ? packed::matmul_groups_kquant : packed::matmul_groups;
  // Full groups inside the range; rows before and after them go to the raw kernels.
  const int64_t g_begin = (row_begin + kPackRows - 1) / kPackRows;
  const int64_t g_end = std::min(row_end, packed_rows(w)) / kPackRows;
  if (g_begin >= g_end) return raw(w, x, row_begin, row_end, y);
  if (row_begin < g_begin * kPackRows) raw(w, x, row_begin, g_begin * kPackRows, y);
  groups(w, x, terms, g_begin, g_end, y);
  if (g_end * kPackRows < row_end) raw(w, x, g_end * kPackRows, row_end, y);
}

void matmul_packed_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                        int64_t row_end, float* y, QuantOrder order) {
  thread_local PackedActTerms terms;  // reused: no allocation per call
  prepare_packed_terms(w.type, x, w.cols, terms, order);
  matmul_packed_rows(w, x, terms, row_begin, row_end, y);
}

}  // namespace pareto::kernels
