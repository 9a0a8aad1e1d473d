#include "kernels/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/half.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"
#include "kernels/quant_packed.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

namespace pareto::kernels {

KernelPath native_kernel_path() {
  if (cpu_has_amx_int8()) return KernelPath::kLlamacppAmx;
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f")) return KernelPath::kPortableAvx512;
#endif
  return KernelPath::kPortable;
}

KernelPath select_kernel_path(bool force_scalar) {
  return force_scalar ? KernelPath::kScalar : native_kernel_path();
}

Result<KernelPath> kernel_path_from_name(std::string_view name) {
  if (auto path = parse_kernel_path(name)) return *path;
  return make_error("unknown kernel order '", name,
                    "' (valid: scalar, llamacpp-avx2, llamacpp-avx512, llamacpp-amx)");
}

std::string_view kernel_path_name(KernelPath path) {
  switch (path) {
    case KernelPath::kScalar:
      return "scalar";
    case KernelPath::kPortable:
      return "llamacpp-avx2";
    case KernelPath::kPortableAvx512:
      return "llamacpp-avx512";
    case KernelPath::kLlamacppAmx:
      return "llamacpp-amx";
  }
  return "unknown";
}

std::optional<KernelPath> parse_kernel_path(std::string_view name) {
  for (KernelPath p : {KernelPath::kScalar, KernelPath::kPortable, KernelPath::kPortableAvx512,
                       KernelPath::kLlamacppAmx}) {
    if (kernel_path_name(p) == name) return p;
  }
  return std::nullopt;
}

const KernelSet& kernel_set(KernelPath path) {
  switch (path) {
    case KernelPath::kScalar:
      return scalar_kernel_set();
    case KernelPath::kPortable:
      return portable_kernel_set();
    case KernelPath::kPortableAvx512:
      return portable_avx512_kernel_set();
    case KernelPath::kLlamacppAmx:
      return llamacpp_amx_kernel_set();
  }
  return portable_kernel_set();
}

bool cpu_has_amx_int8() {
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool amx_int8 = (edx >> 25) & 1u;  // CPUID.(EAX=7,ECX=0):EDX[25]
  return amx_int8 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const KernelSet& llamacpp_amx_kernel_set() {
  // Only Q8_0 differs in this table from the AVX-512 order; F16 (matmul_f16_f32act) and the
  // K-quants (matmul_kquant_block_rows) are chosen in matmul by quant_order / f16_f32_activations.
  // llama.cpp's AMX build runs F32/BF16, the matrices its AMX buffer does not take and the
  // attention through the same AVX-512 code, and its Q4_0 kernels sum one float per block, as
  // the repacked Q4_0 order here does (Q4_0 matrices with rows % 8 != 0 keep the lanes order
  // here; how the AMX build treats them is not checked).
  static const KernelSet kSet = [] {
    KernelSet set = portable_avx512_kernel_set();
    set.name = "llamacpp-amx";
    set.matmul_q8_0 = [](const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                         int64_t row_end, float* y) {
      if (quant_order(KernelPath::kLlamacppAmx, TensorType::Q8_0, w.rows) == QuantOrder::kBlock) {
        return matmul_q8_0_block_rows_fast(w, x, row_begin, row_end, y);
      }
      matmul_q8_0_rows_fast(w, x, row_begin, row_end, y);
    };
    return set;
  }();
  return kSet;
}

TensorType activation_type(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::F32:
      return TensorType::F32;
    case TensorType::F16:
      return TensorType::F16;
    case TensorType::BF16:
      return TensorType::BF16;
    case TensorType::Q8_0:
    case TensorType::Q4_0:
      return TensorType::Q8_0;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      return TensorType::Q8_K;
    default:
      PARETO_CHECK_MSG(false, "activation_type: unsupported weight type");
  }
}

namespace {

// Converts x [n_tokens, cols] to `type`, into `storage` (left empty for F32, which is used as is).
// A batch is split over the pool by token (each row's conversion is independent).
PreparedActivations prepare_activations(TensorType type, const float* x, int64_t n_tokens,
                                        int64_t cols, std::vector<uint8_t>& storage,
                                        ThreadPool& pool) {
  PreparedActivations p;
  p.type = type;
  p.n_tokens = n_tokens;
  p.row_bytes = row_bytes(type, cols);
  if (type == TensorType::F32) {
    p.data = reinterpret_cast<const uint8_t*>(x);
    return p;
  }
  // Rows start 64-byte aligned when row_bytes allows (2048 F16 columns: every row): a vector load
  // that straddles two cache lines costs about two.
  storage.resize(static_cast<size_t>(p.row_bytes * n_tokens + 63));
  const size_t misalign = reinterpret_cast<uintptr_t>(storage.data()) % 64;
  uint8_t* const base = storage.data() + (misalign == 0 ? 0 : 64 - misalign);
  const auto convert = [&](size_t begin, size_t end, int) {
    for (auto t = static_cast<int64_t>(begin); t < static_cast<int64_t>(end); ++t) {
      uint8_t* dst = base + t * p.row_bytes;
      const float* src = x + t * cols;
      if (type == TensorType::Q8_0) {
        quantize_activations_q8_0_fast(src, reinterpret_cast<BlockQ8_0*>(dst), cols);
      } else if (type == TensorType::Q8_K) {
        quantize_row_q8_K(src, reinterpret_cast<BlockQ8_K*>(dst), cols);
      } else if (type == TensorType::F16) {
        f32_to_f16_row_fast(src, reinterpret_cast<uint16_t*>(dst), cols);
      } else {
        quantize_row(type, src, dst, cols);  // BF16: round to nearest even
      }
    }
  };
  pool.parallel_for(static_cast<size_t>(n_tokens), convert);  // one token: runs inline
  p.data = base;
  return p;
}

MatmulRowsFn rows_fn(KernelPath path, const WeightView& w) {
  if (is_kquant(w.type)) {
    if (path == KernelPath::kScalar) return matmul_kquant_rows_scalar;
    return quant_order(path, w.type, w.rows) == QuantOrder::kBlock ? matmul_kquant_block_rows
                                                                   : matmul_kquant_rows;
  }
  const KernelSet& ks = kernel_set(path);
  switch (w.type) {
    case TensorType::F32:
      return ks.matmul_f32;
    case TensorType::F16:
      return ks.matmul_f16;
    case TensorType::BF16:
      return ks.matmul_bf16;
    case TensorType::Q8_0:
      return ks.matmul_q8_0;
    case TensorType::Q4_0:
      return ks.matmul_q4_0;
    default:
      PARETO_CHECK_MSG(false, "matmul: unsupported weight type");
  }
}

// Rows per work item: small enough to balance threads, large enough to amortize dispatch.
constexpr int64_t kRowsPerItem = 16;

// Work items per dynamically scheduled chunk: about 8 chunks per thread, so that a thread that
// is descheduled or slower (a busy machine) holds the others up by one chunk, not by its share.
size_t chunk_items(int64_t n_items, int n_threads) {
  return static_cast<size_t>(std::max<int64_t>(1, n_items / (8 * std::max(n_threads, 1))));
}

// The same for a matmul whose items each read `item_bytes` of weights for `n_tokens` tokens, but
// at least kMinChunkWork bytes x tokens a chunk (and one chunk per thread at most): taking a
// chunk is an atomic on a line the other threads take too, about half a microsecond between two
// vCPUs of a VM, and a one-token step of a small model (pycode7m: 18 KiB of weights an item, 31
// matmuls) spent more on 16 such hand-overs per matmul than it gained in balance (2 threads:
// tg96 1546-1836 tok/s before, 1755-1952 after, alternated; docs/benchmarks.md).
constexpr int64_t kMinChunkWork = 64 << 10;
// `multiple`: chunks are whole multiples of it (the packed kernels interleave 4 groups).
size_t matmul_chunk_items(int64_t n_items, int n_threads, int64_t item_bytes, int64_t n_tokens,
                          int64_t multiple = 1) {
  const int64_t work = std::max<int64_t>(1, item_bytes * n_tokens);
  const int64_t by_work = (kMinChunkWork + work - 1) / work;
  const int64_t per_thread = (n_items + n_threads - 1) / std::max(n_threads, 1);
  // Rounded down, so that rounding the chunk up below still leaves a chunk for every thread.
  const int64_t per_thread_whole = std::max(multiple, per_thread / multiple * multiple);
  const auto balanced = static_cast<int64_t>(chunk_items(n_items, n_threads));
  const int64_t chunk =
      std::max<int64_t>(1, std::max(balanced, std::min(by_work, per_thread_whole)));
  return static_cast<size_t>((chunk + multiple - 1) / multiple * multiple);
}

}  // namespace

namespace {

// Whether the matrices can share one activation conversion and one dispatch: the same type,
// columns and kernel (packed or not, the same summation order and activation precision).
bool share_input(std::span<const MatmulOutput> outs, KernelPath path) {
  const WeightView& a = outs[0].w;
  const bool packed = a.packed != nullptr;
  for (const MatmulOutput& o : outs.subspan(1)) {
    const WeightView& b = o.w;
    if (b.type != a.type || b.cols != a.cols || (b.packed != nullptr) != packed ||
        quant_order(path, b.type, b.rows) != quant_order(path, a.type, a.rows) ||
        f16_f32_activations(path, b.rows, b.cols) != f16_f32_activations(path, a.rows, a.cols)) {
      return false;
    }
  }
  return true;
}

// Calls fn(output index, first item, end item) for the part of the concatenated items
// [begin, end) in each output (items: 16-row groups of each matrix, matrix after matrix).
template <class Fn>
void for_each_part(std::span<const int64_t> first_item, size_t begin, size_t end, Fn&& fn) {
  for (size_t i = 0; i + 1 < first_item.size(); ++i) {
    const auto lo = std::max(static_cast<int64_t>(begin), first_item[i]);
    const auto hi = std::min(static_cast<int64_t>(end), first_item[i + 1]);
    if (lo < hi) fn(i, lo - first_item[i], hi - first_item[i]);
  }
}

}  // namespace

void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            KernelPath path, bool batch_invariant) {
  const MatmulOutput out{w, y};
  matmul(std::span<const MatmulOutput>(&out, 1), x, n_tokens, pool, path, batch_invariant);
}

void matmul(std::span<const MatmulOutput> outs, const float* x, int64_t n_tokens, ThreadPool& pool,
            KernelPath path, bool batch_invariant) {
  if (outs.empty() || n_tokens == 0) return;
  if (outs.size() > 1 && !share_input(outs, path)) {
    for (const MatmulOutput& o : outs) matmul(o.w, x, n_tokens, o.y, pool, path, batch_invariant);
    return;
  }
  const WeightView& w0 = outs[0].w;
  PARETO_CHECK(w0.cols % traits(w0.type).block_size == 0);
  // Items: 16-row groups of every matrix, one after another. first_item[i]: output i's first.
  thread_local std::vector<int64_t> first_item;
  first_item.assign(1, 0);
  for (const MatmulOutput& o : outs) {
    first_item.push_back(first_item.back() + (o.w.rows + kRowsPerItem - 1) / kRowsPerItem);
  }
  const int64_t n_items = first_item.back();
  if (n_items == 0) return;
  const int64_t item_bytes = kRowsPerItem * w0.row_bytes();
  const std::span<const int64_t> firsts = first_item;  // workers read this thread's copy
  // Reused across calls (grows to the largest batch): no allocation per matmul in steady state.
  thread_local std::vector<uint8_t> storage;
  const bool f32act = w0.type == TensorType::F16 && f16_f32_activations(path, w0.rows, w0.cols);
  const PreparedActivations xa = prepare_activations(
      f32act ? TensorType::F32 : activation_type(w0.type), x, n_tokens, w0.cols, storage, pool);
  // Batch-invariant: each token's row goes through the kernel as a batch of one (the decode
  // routine), token after token within a work item, so its weights are read from cache for the
  // later tokens. Row conversion above is per row already. Only the float matrices need it: their
  // batches take tinyBLAS. Every quantized kernel sums a token's row the same way whatever the
  // batch (measured on every path, packed or not; tests/kernels/matmul_test.cpp
  // BatchInvariantRowsEqualSingleTokenRowsBitForBit holds each CPU to it), so they keep their
  // batched form.
  const bool float_type =
      w0.type == TensorType::F32 || w0.type == TensorType::F16 || w0.type == TensorType::BF16;
  const bool per_token = batch_invariant && n_tokens > 1 && float_type;
  const auto token_view = [&xa](int64_t t) {
    PreparedActivations one = xa;
    one.data = xa.row(t);
    one.n_tokens = 1;
    return one;
  };
  if (w0.packed != nullptr && path != KernelPath::kScalar && packed_kernels_supported()) {
    // Same results as the kernel-set entry, faster. The activation terms are computed once here
    // (the calling thread's storage is reused), not once per chunk.
    const QuantOrder order = quant_order(path, w0.type, w0.rows);
    thread_local std::vector<PackedActTerms> storage_terms;
    const size_t n_terms = per_token ? static_cast<size_t>(n_tokens) : 1;
    if (storage_terms.size() < n_terms) storage_terms.resize(n_terms);
    if (per_token) {
      for (int64_t t = 0; t < n_tokens; ++t) {
        prepare_packed_terms(w0.type, token_view(t), w0.cols, storage_terms[static_cast<size_t>(t)],
                             order);
      }
    } else {
      prepare_packed_terms(w0.type, xa, w0.cols, storage_terms[0], order);
    }
    const std::vector<PackedActTerms>& terms = storage_terms;  // workers read this thread's copy
    // Chunks of whole multiples of 4 groups (items are groups here): the decode kernels interleave
    // 4 (Q4_0) or 2 (Q8_0) groups, and a chunk's leftover groups take the slower one-group path.
    const size_t chunk = matmul_chunk_items(n_items, pool.size(), item_bytes, n_tokens, 4);
    static_assert(kRowsPerItem == kPackRows);
    pool.parallel_for_dynamic(
        static_cast<size_t>(n_items), chunk, [&](size_t begin, size_t end, int) {
          for_each_part(firsts, begin, end, [&](size_t i, int64_t lo, int64_t hi) {
            const WeightView& w = outs[i].w;
            float* y = outs[i].y;
            const int64_t row_begin = lo * kRowsPerItem;
            const int64_t row_end = std::min(w.rows, hi * kRowsPerItem);
            if (!per_token) return matmul_packed_rows(w, xa, terms[0], row_begin, row_end, y);
            for (int64_t t = 0; t < n_tokens; ++t) {
              matmul_packed_rows(w, token_view(t), terms[static_cast<size_t>(t)], row_begin,
                                 row_end, y + t * w.rows);
            }
          });
        });
    return;
  }
  const MatmulRowsFn fn = f32act ? kernel_set(path).matmul_f16_f32act : rows_fn(path, w0);
  // Batch-invariant with a kernel that takes every token in the one-token order at once.
  MatmulRowsFn each_token = nullptr;
  if (per_token && !f32act) {
    const KernelSet& ks = kernel_set(path);
    each_token = w0.type == TensorType::F32   ? ks.matmul_f32_each_token
                 : w0.type == TensorType::F16 ? ks.matmul_f16_each_token
                                              : ks.matmul_bf16_each_token;
  }
  pool.parallel_for_dynamic(
      static_cast<size_t>(n_items), matmul_chunk_items(n_items, pool.size(), item_bytes, n_tokens),
      [&](size_t begin, size_t end, int) {
        for_each_part(firsts, begin, end, [&](size_t i, int64_t lo, int64_t hi) {
          const WeightView& w = outs[i].w;
          float* y = outs[i].y;
          const int64_t row_begin = lo * kRowsPerItem;
          const int64_t row_end = std::min(w.rows, hi * kRowsPerItem);
          if (!per_token) return fn(w, xa, row_begin, row_end, y);
          if (each_token != nullptr) {
            return each_token(w, xa, row_begin, row_end, y);
          }
          for (int64_t t = 0; t < n_tokens; ++t) {
            fn(w, token_view(t), row_begin, row_end, y + t * w.rows);
          }
        });
      });
}

void get_rows(const WeightView& w, std::span<const int32_t> ids, float* dst) {
  std::vector<uint8_t> raw;  // a row rebuilt from the packed copy
  for (size_t i = 0; i < ids.size(); ++i) {
    PARETO_CHECK(ids[i] >= 0 && ids[i] < w.rows);
    const uint8_t* row = w.row(ids[i]);
    // Read packed rows from the packed copy: the raw pages may have been released (and each
    // read would fault them back into RSS).
    if (w.packed != nullptr && ids[i] < packed_rows(w)) {
      raw.resize(static_cast<size_t>(w.row_bytes()));
      unpack_row(w, ids[i], raw.data());
      row = raw.data();
    }
    dequantize_row(w.type, row, dst + static_cast<int64_t>(i) * w.cols, w.cols);
  }
}

std::string_view attention_algorithm_name(AttentionAlgorithm algorithm) {
  return algorithm == AttentionAlgorithm::kOnlineSoftmax ? "online-softmax" : "softmax-rows";
}

void attention(const AttentionArgs& args, ThreadPool& pool, KernelPath path,
               AttentionAlgorithm algorithm) {
  PARETO_CHECK(args.n_kv_heads > 0 && args.n_heads % args.n_kv_heads == 0);
  PARETO_CHECK(static_cast<int>(args.kv.size()) == args.n_kv_heads);
  const KernelSet& set = kernel_set(path);
  const AttentionItemsFn fn =
      algorithm == AttentionAlgorithm::kOnlineSoftmax ? set.attention_online : set.attention;
  const size_t n_items = static_cast<size_t>(args.n_tokens) * static_cast<size_t>(args.n_heads);
  const auto group = static_cast<size_t>(args.n_heads / args.n_kv_heads);
  // Dynamic chunks: in a causal batch later tokens attend to more entries (uneven items). Both
  // forms walk KV head first, then tokens, so that one KV head's keys and values stay in L2 while
  // the chunk's tokens use them (token first, every token would stream the whole layer's cache
  // from L3 at long contexts). The online form numbers its items that way (attention_online.h);
  // the score-row form gets one call per (KV head, token): its query heads.
  size_t chunk = chunk_items(static_cast<int64_t>(n_items), pool.size());
  chunk = (chunk + group - 1) / group * group;
  if (algorithm == AttentionAlgorithm::kOnlineSoftmax) {
    pool.parallel_for_dynamic(n_items, chunk, [&](size_t begin, size_t end, int) {
      fn(args, static_cast<int64_t>(begin), static_cast<int64_t>(end));
    });
    return;
  }
  const auto n_tokens = static_cast<size_t>(args.n_tokens);
  pool.parallel_for_dynamic(n_items / group, chunk / group, [&](size_t begin, size_t end, int) {
    for (size_t unit = begin; unit < end; ++unit) {
      const size_t g = unit / n_tokens;
      const size_t t = unit % n_tokens;
      const auto first = static_cast<int64_t>(t * static_cast<size_t>(args.n_heads) + g * group);
      fn(args, first, first + static_cast<int64_t>(group));
    }
  });
}

void attention_kv_head(const AttentionArgs& args, int kv_head, KernelPath path,
                       AttentionAlgorithm algorithm) {
  PARETO_CHECK(args.n_kv_heads > 0 && args.n_heads % args.n_kv_heads == 0);
  PARETO_CHECK(static_cast<int>(args.kv.size()) == args.n_kv_heads);
  PARETO_CHECK(kv_head >= 0 && kv_head < args.n_kv_heads);
  const KernelSet& set = kernel_set(path);
  const int64_t group = args.n_heads / args.n_kv_heads;
  if (algorithm == AttentionAlgorithm::kOnlineSoftmax) {
    // Items numbered KV head first (attention_online.h): this head's are one range.
    const int64_t per_kv_head = int64_t{args.n_tokens} * group;
    set.attention_online(args, kv_head * per_kv_head, (kv_head + 1) * per_kv_head);
    return;
  }
  for (int64_t t = 0; t < args.n_tokens; ++t) {
    const int64_t first = t * args.n_heads + kv_head * group;
    set.attention(args, first, first + group);
  }
}

}  // namespace pareto::kernels
