// The decoder forward pass, in llama.cpp's order of operations (llm_build_llama / qwen2):
//   x = embd[tokens]
//   per layer: h = rmsnorm(x) * attn_norm; q,k,v = h W (+ b); rope(q, k); append k, v to each
//              entry's cache; x += attention(q, cache) W_o; h = rmsnorm(x) * ffn_norm;
//              x += (silu(h W_gate) * (h W_up)) W_down
//   logits = (rmsnorm(x) * output_norm) W_out, for the rows that asked for them
// A batch mixes sequences (batch.h): every op but attention is row-wise over the whole batch;
// attention runs per sequence over its cache, which already holds the batch's new entries (so they
// are read back in the cache's storage type, as llama.cpp reads its F16 cache).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/decoder.h"

namespace pareto::model::detail {

namespace {

kernels::RopeMode rope_mode(RopeStyle style) {
  return style == RopeStyle::kHalves ? kernels::RopeMode::kNeox : kernels::RopeMode::kNorm;
}

template <class V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Checks the batch and splits it into runs of one sequence each.
Status validate_batch(const ModelConfig& c, std::span<const BatchEntry> batch,
                      std::span<kv::KvCache* const> caches, std::vector<BatchRun>& runs,
                      std::vector<uint8_t>& seen) {
  if (batch.empty()) return make_error("model: forward: empty batch (no tokens)");
  runs.clear();
  seen.assign(caches.size(), 0);
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchEntry& e = batch[i];
    if (e.token < 0 || e.token >= c.n_vocab) {
      return make_error("model: forward: token id ", e.token, " at batch index ", i,
                        " out of range [0, ", c.n_vocab, ")");
    }
    if (e.seq < 0 || static_cast<size_t>(e.seq) >= caches.size() || caches[e.seq] == nullptr ||
        !caches[e.seq]->valid()) {
      return make_error("model: forward: batch index ", i, ": sequence ", e.seq, " has no cache (",
                        caches.size(), " caches given)");
    }
    if (e.position < 0 || e.position >= (int32_t{1} << 30)) {
      return make_error("model: forward: batch index ", i, ": position ", e.position,
                        " out of range [0, 2^30)");
    }
    if (runs.empty() || runs.back().seq != e.seq) {
      if (seen[static_cast<size_t>(e.seq)]) {
        return make_error("model: forward: the entries of sequence ", e.seq,
                          " are not consecutive in the batch (again at index ", i, ")");
      }
      seen[static_cast<size_t>(e.seq)] = 1;
      runs.push_back(
          {e.seq, static_cast<int64_t>(i), static_cast<int64_t>(i), e.parent != kCausal});
    }
    BatchRun& run = runs.back();
    if ((e.parent != kCausal) != run.tree) {
      return make_error("model: forward: sequence ", e.seq,
                        " mixes causal and tree entries (batch index ", i, ")");
    }
    if (e.parent != kCausal && e.parent != kTreeRoot) {
      if (e.parent < run.begin || static_cast<size_t>(e.parent) >= i ||
          batch[static_cast<size_t>(e.parent)].position >= e.position) {
        return make_error("model: forward: batch index ", i, ": parent ", e.parent,
                          " must be an earlier entry of the same sequence at a lower position");
      }
    }
    run.end = static_cast<int64_t>(i) + 1;
  }
  for (const BatchRun& run : runs) {
    const kv::KvShape s = caches[run.seq]->shape();
    if (s.n_layers != c.n_layers || s.n_kv_heads != c.n_kv_heads || s.head_dim != c.head_dim) {
      return make_error("model: forward: KV cache shape (layers ", s.n_layers, ", kv heads ",
                        s.n_kv_heads, ", head dim ", s.head_dim, ") does not match the model (",
                        c.n_layers, ", ", c.n_kv_heads, ", ", c.head_dim, ")");
    }
  }
  // Reserve last, once everything else is known to be valid: an error here leaves every cache's
  // entries as they were (reserved pages are kept for later appends).
  for (const BatchRun& run : runs) {
    kv::KvCache& cache = *caches[run.seq];
    if (auto st = cache.reserve(static_cast<int>(run.end - run.begin)); !st) {
      return make_error_code(st.error().code, "model: forward: sequence ", run.seq, ": ",
                             st.error().message, " (", cache.n_tokens(), " tokens in the cache + ",
                             run.end - run.begin, " new)");
    }
  }
  return ok();
}

// Causal runs of at most this many new entries (decode steps, short drafts) are attended
// together, one pool dispatch for all of them (attend_short_runs); longer ones (prompt chunks)
// one run at a time, their (KV head, token) items spread over the pool.
constexpr int64_t kShortRun = 16;

// Attention args of one run of the batch over `views` ([n_kv_heads]).
kernels::AttentionArgs run_args(const ModelConfig& c, const kv::KvCache& cache,
                                std::span<const kernels::KvHeadView> views) {
  kernels::AttentionArgs args;
  args.n_heads = c.n_heads;
  args.n_kv_heads = c.n_kv_heads;
  args.head_dim = c.head_dim;
  args.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  args.kv = views;
  // Over an F16 cache llama.cpp rounds the queries and the softmax row to F16 (attention.h).
  args.keys_f16 = cache.pool().options().key_type == kv::KvType::kF16;
  args.values_f16 = cache.pool().options().value_type == kv::KvType::kF16;
  return args;
}

// One KV head of one layer of a cache, read a block of entries at a time by the online-softmax
// attention (kernels::KvBlockReader; ForwardOptions::online_block_read_bytes says when).
struct CacheBlocks {
  const kv::KvCache* cache;
  int layer;
  int head;
};
void read_cache_blocks(const void* context, int begin, int n, float* keys, float* values) {
  const auto* b = static_cast<const CacheBlocks*>(context);
  b->cache->gather_range(b->layer, b->head, begin, begin + n, keys, values, nullptr);
}

// Points `args` at the queries and outputs of batch rows [row, row + count).
void set_query_rows(kernels::AttentionArgs& args, ForwardWorkspace& ws, int64_t q_dim, int64_t row,
                    int64_t count) {
  args.q = ws.q.data() + row * q_dim;
  args.q_positions = ws.positions.data() + row;
  args.n_tokens = static_cast<int>(count);
  args.out = ws.attn.data() + row * q_dim;
}

// fn(row, count) over a causal run's rows: all at once, or in the batch-invariant mode one row at
// a time, as in decode.
template <class Fn>
void for_each_row_block(const BatchRun& run, bool batch_invariant, Fn&& fn) {
  if (!batch_invariant) return fn(run.begin, run.end - run.begin);
  for (int64_t t = run.begin; t < run.end; ++t) fn(t, 1);
}

// Points args.weights at an observed run's rows for batch rows [row, ...) (none when the run is
// not observed): KV head g's rows of queries row - run.begin onwards.
void set_weight_rows(kernels::AttentionArgs& args, ForwardWorkspace::ObservedRun& o,
                     const BatchRun& run, int64_t row, int group, std::vector<float*>& ptrs) {
  if (o.first.empty()) {
    args.weights = {};
    return;
  }
  ptrs.resize(o.first.size() - 1);
  for (size_t g = 0; g + 1 < o.first.size(); ++g) {
    const size_t len = args.kv[g].length;
    ptrs[g] = o.weights.data() + o.first[g] +
              static_cast<size_t>(row - run.begin) * static_cast<size_t>(group) * len;
  }
  args.weights = ptrs;
}

// q . k over hd elements in 16 independent lanes (vectorizable; these weights only rank entries
// for a KV policy, they need not match the attention kernels' summation order).
float dot_lanes(const float* q, const float* k, int hd) {
  float lanes[16] = {};
  int d = 0;
  for (; d + 16 <= hd; d += 16) {
    for (int i = 0; i < 16; ++i) lanes[i] += q[d + i] * k[d + i];
  }
  float sum = 0;
  for (; d < hd; ++d) sum += q[d] * k[d];
  for (float v : lanes) sum += v;
  return sum;
}

// The attention weights of a causal run's queries (rows [run.begin, run.end) of ws.q, after RoPE)
// over the cache's entries of every KV head, handed to the observer (model.h). A pass apart from
// the attention kernels (KV heads spread over the pool), run only for sequences whose KV policy
// scores entries.
void observe_attention(const ModelConfig& c, int layer, const BatchRun& run,
                       const kv::KvCache& cache, ForwardWorkspace& ws, ThreadPool& pool,
                       AttentionObserver& observer) {
  const int hd = c.head_dim;
  const int group = c.n_heads / c.n_kv_heads;
  const int64_t q_dim = int64_t{c.n_heads} * hd;
  const int n_q = static_cast<int>(run.end - run.begin);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Per KV head: its slice of the gathered entries and of the weights.
  std::vector<size_t>& first = ws.head_first;
  first.resize(static_cast<size_t>(c.n_kv_heads) + 1);
  first[0] = 0;
  for (int g = 0; g < c.n_kv_heads; ++g) {
    first[static_cast<size_t>(g) + 1] =
        first[static_cast<size_t>(g)] + static_cast<size_t>(cache.length(layer, g));
  }
  const size_t total = first.back();
  grow(ws.kv_keys, total * static_cast<size_t>(hd));
  grow(ws.kv_positions, total);
  const size_t rows = static_cast<size_t>(n_q) * static_cast<size_t>(group);
  ws.observed.assign(total * rows, 0.0f);
  if (ws.head_scratch.size() < static_cast<size_t>(pool.size())) {
    ws.head_scratch.resize(static_cast<size_t>(pool.size()));
  }
  pool.parallel_for(static_cast<size_t>(c.n_kv_heads), [&](size_t begin, size_t end, int thread) {
    AlignedVector<float>& s = ws.head_scratch[static_cast<size_t>(thread)].keys;
    for (size_t g = begin; g < end; ++g) {
      const size_t at = first[g];
      const int len = static_cast<int>(first[g + 1] - at);
      float* keys = ws.kv_keys.data() + at * static_cast<size_t>(hd);
      int32_t* positions = ws.kv_positions.data() + at;
      cache.gather(layer, static_cast<int>(g), keys, nullptr, positions);  // values not needed
      grow(s, static_cast<size_t>(len));
      float* weights = ws.observed.data() + at * rows;
      for (int t = 0; t < n_q; ++t) {
        const int32_t pos = ws.positions[static_cast<size_t>(run.begin + t)];
        for (int j = 0; j < group; ++j) {
          float* out = weights + static_cast<size_t>(t * group + j) * static_cast<size_t>(len);
          const float* q = ws.q.data() + (run.begin + t) * q_dim +
                           static_cast<int64_t>(static_cast<int>(g) * group + j) * hd;
          float mx = -INFINITY;
          for (int e = 0; e < len; ++e) {
            s[static_cast<size_t>(e)] =
                positions[e] > pos
                    ? -INFINITY
                    : dot_lanes(q, keys + static_cast<size_t>(e) * static_cast<size_t>(hd), hd) *
                          scale;
            mx = std::max(mx, s[static_cast<size_t>(e)]);
          }
          if (mx == -INFINITY) continue;
          double sum = 0;
          for (int e = 0; e < len; ++e) {
            float& x = s[static_cast<size_t>(e)];
            x = x == -INFINITY ? 0.0f : std::exp(x - mx);
            sum += x;
          }
          const auto inv = static_cast<float>(1.0 / sum);
          for (int e = 0; e < len; ++e) out[e] = s[static_cast<size_t>(e)] * inv;
        }
      }
    }
  });
  for (int g = 0; g < c.n_kv_heads; ++g) {
    const size_t at = first[static_cast<size_t>(g)];
    const int len = static_cast<int>(first[static_cast<size_t>(g) + 1] - at);
    observer.observe(
        run.seq, layer, g,
        std::span<const float>(ws.observed.data() + at * rows, rows * static_cast<size_t>(len)),
        n_q, group, len);
  }
}

}  // namespace

// Every short causal run's attention in one dispatch over units (run, KV head): a unit decodes
// its sequence's entries of that head into its thread's scratch and attends its queries to them
// at once (while they are in cache). The same kernel calls as attend() per run: bit-identical.
void DecoderModel::attend_short_runs(int layer, std::span<kv::KvCache* const> caches,
                                     ForwardWorkspace& ws, ThreadPool& pool,
                                     kernels::KernelPath path,
                                     const ForwardOptions& options) const {
  const ModelConfig& c = config_;
  const auto hd = static_cast<size_t>(c.head_dim);
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim;
  const auto n_heads_kv = static_cast<size_t>(c.n_kv_heads);
  if (ws.head_scratch.size() < static_cast<size_t>(pool.size())) {
    ws.head_scratch.resize(static_cast<size_t>(pool.size()));
  }
  const size_t n_units = ws.short_runs.size() * n_heads_kv;
  // Units of little work (a short context) go in chunks of several: taking a chunk is an atomic
  // that moves between cores (about half a microsecond between two vCPUs of a VM), as long as
  // attending one query to a hundred entries. kMinUnitWork: entries x query rows a chunk.
  constexpr int64_t kMinUnitWork = 2048;
  int64_t work = 0;
  for (const int32_t r : ws.short_runs) {
    const BatchRun& run = ws.runs[static_cast<size_t>(r)];
    work += int64_t{caches[run.seq]->length(layer, 0)} * (run.end - run.begin);
  }
  const int64_t per_unit = std::max<int64_t>(1, work / static_cast<int64_t>(ws.short_runs.size()));
  const auto per_thread = static_cast<int64_t>((n_units + static_cast<size_t>(pool.size()) - 1) /
                                               static_cast<size_t>(pool.size()));
  const auto grain = static_cast<size_t>(
      std::clamp<int64_t>((kMinUnitWork + per_unit - 1) / per_unit, 1, per_thread));
  pool.parallel_for_dynamic(n_units, grain, [&](size_t begin, size_t end, int thread) {
    ForwardWorkspace::HeadScratch& scratch = ws.head_scratch[static_cast<size_t>(thread)];
    std::vector<kernels::KvHeadView>& views = scratch.views;
    views.assign(n_heads_kv, kernels::KvHeadView{});
    for (size_t unit = begin; unit < end; ++unit) {
      const BatchRun& run = ws.runs[static_cast<size_t>(ws.short_runs[unit / n_heads_kv])];
      const int g = static_cast<int>(unit % n_heads_kv);
      const kv::KvCache& cache = *caches[run.seq];
      const int len = cache.length(layer, g);
      grow(scratch.positions, static_cast<size_t>(len));
      // The online form reads the keys and values of a long cache a block at a time from the
      // cache itself (their f32 copy would not stay in L2); the score-row form, and a short cache,
      // take them decoded whole (one call instead of one per 16 entries).
      const CacheBlocks blocks{&cache, layer, g};
      if (options.attention == kernels::AttentionAlgorithm::kOnlineSoftmax &&
          static_cast<size_t>(len) * hd * 2 * sizeof(float) > options.online_block_read_bytes) {
        cache.gather(layer, g, nullptr, nullptr, scratch.positions.data());
        views[static_cast<size_t>(g)] = {
            nullptr, nullptr, scratch.positions.data(), len, {&blocks, read_cache_blocks}};
      } else {
        grow(scratch.keys, static_cast<size_t>(len) * hd);
        grow(scratch.values, static_cast<size_t>(len) * hd);
        cache.gather(layer, g, scratch.keys.data(), scratch.values.data(),
                     scratch.positions.data());
        views[static_cast<size_t>(g)] = {scratch.keys.data(), scratch.values.data(),
                                         scratch.positions.data(), len};
      }
      kernels::AttentionArgs args = run_args(c, cache, views);
      ForwardWorkspace::ObservedRun& observed =
          ws.observed_runs[static_cast<size_t>(ws.short_runs[unit / n_heads_kv])];
      for_each_row_block(run, options.batch_invariant, [&](int64_t row, int64_t count) {
        set_query_rows(args, ws, q_dim, row, count);
        set_weight_rows(args, observed, run, row, c.n_heads / c.n_kv_heads, scratch.weights);
        kernels::attention_kv_head(args, g, path, options.attention);
      });
    }
  });
}

void DecoderModel::attend(int layer, const BatchRun& run, kv::KvCache& cache, ForwardWorkspace& ws,
                          ThreadPool& pool, kernels::KernelPath path,
                          const ForwardOptions& options) const {
  const ModelConfig& c = config_;
  const auto hd = static_cast<size_t>(c.head_dim);
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim;
  const int64_t n_new = run.end - run.begin;
  // Gather every KV head's entries (decoded to f32), one after another.
  size_t total = 0;
  for (int g = 0; g < c.n_kv_heads; ++g) total += static_cast<size_t>(cache.length(layer, g));
  grow(ws.kv_keys, total * hd);
  grow(ws.kv_values, total * hd);
  grow(ws.kv_positions, total);
  std::vector<kernels::KvHeadView>& views = ws.views;
  std::vector<size_t>& first = ws.head_first;
  views.resize(static_cast<size_t>(c.n_kv_heads));
  first.resize(static_cast<size_t>(c.n_kv_heads));
  size_t off = 0;
  for (int g = 0; g < c.n_kv_heads; ++g) {
    const int len = cache.length(layer, g);
    first[static_cast<size_t>(g)] = off;
    views[static_cast<size_t>(g)] = {ws.kv_keys.data() + off * hd, ws.kv_values.data() + off * hd,
                                     ws.kv_positions.data() + off, len};
    off += static_cast<size_t>(len);
  }
  // Decoding the entries is a pass over the whole cache of the layer: split it over the threads.
  pool.parallel_for(static_cast<size_t>(c.n_kv_heads), [&](size_t begin, size_t end, int) {
    for (size_t g = begin; g < end; ++g) {
      const size_t at = first[g];
      cache.gather(layer, static_cast<int>(g), ws.kv_keys.data() + at * hd,
                   ws.kv_values.data() + at * hd, ws.kv_positions.data() + at);
    }
  });
  kernels::AttentionArgs args = run_args(c, cache, views);
  ForwardWorkspace::ObservedRun& observed =
      ws.observed_runs[static_cast<size_t>(&run - ws.runs.data())];
  std::vector<float*> weight_rows;
  const auto attend_rows = [&](int64_t row, int64_t count) {
    set_query_rows(args, ws, q_dim, row, count);
    set_weight_rows(args, observed, run, row, c.n_heads / c.n_kv_heads, weight_rows);
    kernels::attention(args, pool, path, options.attention);
  };
  if (!run.tree) return for_each_row_block(run, options.batch_invariant, attend_rows);
  // Tree: the new entries are the last n_new of every head. Keep a copy of them, then for each
  // query overwrite the new region with its ancestors and itself (root first) and attend to the
  // cache's older entries plus that chain: what the branch would see as a plain sequence.
  grow(ws.tree_keys, static_cast<size_t>(n_new) * c.n_kv_heads * hd);
  grow(ws.tree_values, static_cast<size_t>(n_new) * c.n_kv_heads * hd);
  grow(ws.tree_positions, static_cast<size_t>(n_new) * c.n_kv_heads);
  for (int g = 0; g < c.n_kv_heads; ++g) {
    const kernels::KvHeadView& v = views[static_cast<size_t>(g)];
    const size_t old = static_cast<size_t>(v.length - n_new);
    const size_t dst = static_cast<size_t>(g) * static_cast<size_t>(n_new);
    std::copy_n(v.keys + old * hd, n_new * hd, ws.tree_keys.data() + dst * hd);
    std::copy_n(v.values + old * hd, n_new * hd, ws.tree_values.data() + dst * hd);
    std::copy_n(v.positions + old, n_new, ws.tree_positions.data() + dst);
  }
  for (int64_t i = 0; i < n_new; ++i) {
    ws.chain.clear();
    for (int64_t j = run.begin + i; j != kTreeRoot;) {
      ws.chain.push_back(static_cast<int32_t>(j - run.begin));
      j = ws.parents[static_cast<size_t>(j)];  // kTreeRoot ends the walk
    }
    std::reverse(ws.chain.begin(), ws.chain.end());
    for (int g = 0; g < c.n_kv_heads; ++g) {
      kernels::KvHeadView& v = views[static_cast<size_t>(g)];
      const int old = cache.length(layer, g) - static_cast<int>(n_new);
      const size_t at = first[static_cast<size_t>(g)];
      float* keys = ws.kv_keys.data() + at * hd;
      float* values = ws.kv_values.data() + at * hd;
      int32_t* positions = ws.kv_positions.data() + at;
      const size_t src0 = static_cast<size_t>(g) * static_cast<size_t>(n_new);
      for (size_t d = 0; d < ws.chain.size(); ++d) {
        const size_t src = src0 + static_cast<size_t>(ws.chain[d]);
        const size_t dst = static_cast<size_t>(old) + d;
        std::copy_n(ws.tree_keys.data() + src * hd, hd, keys + dst * hd);
        std::copy_n(ws.tree_values.data() + src * hd, hd, values + dst * hd);
        positions[dst] = ws.tree_positions[src];
      }
      v.length = old + static_cast<int>(ws.chain.size());
    }
    attend_rows(run.begin + i, 1);
  }
}

Status DecoderModel::forward(std::span<const BatchEntry> batch,
                             std::span<kv::KvCache* const> caches, std::vector<float>& logits,
                             ForwardWorkspace& ws, ThreadPool& pool,
                             const ForwardOptions& options) const {
  const ModelConfig& c = config_;
  // A bad capture is refused before anything is appended.
  if (const ResidualCapture* rc = options.residuals; rc != nullptr) {
    for (const int32_t r : rc->rows) {
      if (r < 0 || static_cast<size_t>(r) >= batch.size() ||
          !batch[static_cast<size_t>(r)].logits) {
        return make_error("model: forward: residual capture of row ", r, " (the batch has ",
                          batch.size(), " rows; a captured row must want logits)");
      }
    }
  }
  PARETO_RETURN_IF_ERROR(validate_batch(c, batch, caches, ws.runs, ws.seen));
  const std::span<const uint8_t> skip = options.skip_layers;
  if (!skip.empty() &&
      (static_cast<int>(skip.size()) != c.n_layers || skip.front() != 0 || skip.back() != 0)) {
    return make_error("model: forward: skip_layers has ", skip.size(), " entries (expected ",
                      c.n_layers, "), and the first and last layers cannot be skipped");
  }
  const std::vector<BatchRun>& runs = ws.runs;
  const kernels::KernelPath path =
      options.kernel_path ? *options.kernel_path
                          : (options.scalar_kernels ? kernels::KernelPath::kScalar : kernel_path_);
  const bool invariant = options.batch_invariant;
  const int64_t n = static_cast<int64_t>(batch.size());
  const int64_t dim = c.dim;
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  const auto sz = [n](int64_t width) { return static_cast<size_t>(n * width); };
  grow(ws.x, sz(dim));
  grow(ws.h, sz(dim));
  grow(ws.q, sz(q_dim));
  grow(ws.k, sz(kv_dim));
  grow(ws.v, sz(kv_dim));
  grow(ws.attn, sz(q_dim));
  grow(ws.proj, sz(dim));
  grow(ws.gate, sz(c.ffn_dim));
  grow(ws.up, sz(c.ffn_dim));
  ws.tokens.resize(static_cast<size_t>(n));
  ws.positions.resize(static_cast<size_t>(n));
  ws.out_rows.clear();
  ws.parents.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ws.tokens[i] = batch[i].token;
    ws.positions[i] = batch[i].position;
    ws.parents[i] = batch[i].parent;
    if (batch[i].logits) ws.out_rows.push_back(static_cast<int32_t>(i));
  }
  ws.short_runs.clear();
  for (size_t r = 0; r < runs.size(); ++r) {
    if (!runs[r].tree && runs[r].end - runs[r].begin <= kShortRun) {
      ws.short_runs.push_back(static_cast<int32_t>(r));
    }
  }
  float* x = ws.x.data();
  float* h = ws.h.data();
  float* proj = ws.proj.data();
  kernels::get_rows(weights_.token_embd, ws.tokens, x);
  ResidualCapture* capture = options.residuals;
  if (capture != nullptr) {
    capture->values.assign(capture->rows.size() * static_cast<size_t>((c.n_layers + 1) * dim), 0);
  }
  // The captured rows' residual stream at layer boundary `boundary`; after the last layer's rows
  // were compacted to those that want logits, a row is found at its index among ws.out_rows.
  const auto capture_at = [&](int boundary, bool compacted) {
    for (size_t i = 0; i < capture->rows.size(); ++i) {
      int64_t row = capture->rows[i];
      if (compacted) {
        row = std::lower_bound(ws.out_rows.begin(), ws.out_rows.end(), capture->rows[i]) -
              ws.out_rows.begin();
      }
      std::copy_n(x + row * dim, dim,
                  capture->values.data() +
                      (i * static_cast<size_t>(c.n_layers + 1) + static_cast<size_t>(boundary)) *
                          static_cast<size_t>(dim));
    }
  };
  bool compacted = false;

  for (int l = 0; l < c.n_layers; ++l) {
    if (capture != nullptr) capture_at(l, false);
    if (!skip.empty() && skip[static_cast<size_t>(l)] != 0) continue;
    const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    kernels::rms_norm(x, w.attn_norm, n, dim, c.rms_eps, h);
    const kernels::MatmulOutput qkv[] = {
        {w.attn_q, ws.q.data()}, {w.attn_k, ws.k.data()}, {w.attn_v, ws.v.data()}};
    kernels::matmul(qkv, h, n, pool, path, invariant);
    if (c.qkv_bias) {
      kernels::add_bias(ws.q.data(), w.bias_q, n, q_dim);
      kernels::add_bias(ws.k.data(), w.bias_k, n, kv_dim);
      kernels::add_bias(ws.v.data(), w.bias_v, n, kv_dim);
    }
    kernels::rope_inplace(ws.q.data(), ws.positions.data(), n, c.n_heads, c.head_dim,
                          rope_params(c, rope_mode(c.rope_style)));
    kernels::rope_inplace(ws.k.data(), ws.positions.data(), n, c.n_kv_heads, c.head_dim,
                          rope_params(c, rope_mode(c.rope_style)));
    for (int64_t t = 0; t < n; ++t) {
      kv::KvCache& cache = *caches[batch[t].seq];
      for (int g = 0; g < c.n_kv_heads; ++g) {
        const int64_t off = (t * c.n_kv_heads + g) * c.head_dim;
        cache.append(l, g, ws.positions[t], ws.k.data() + off, ws.v.data() + off);
      }
    }
    // Observed causal runs get their weights from the attention kernels (softmax rows); with the
    // online form, which keeps no row, a separate pass computes them.
    const bool kernel_weights = options.attention == kernels::AttentionAlgorithm::kSoftmaxRows;
    ws.observed_runs.resize(runs.size());
    for (size_t r = 0; r < runs.size(); ++r) {
      ForwardWorkspace::ObservedRun& o = ws.observed_runs[r];
      o.first.clear();
      const BatchRun& run = runs[r];
      if (!kernel_weights || options.attention_observer == nullptr || run.tree ||
          !options.attention_observer->wants(run.seq)) {
        continue;
      }
      const kv::KvCache& cache = *caches[run.seq];
      const auto rows =
          static_cast<size_t>(run.end - run.begin) * static_cast<size_t>(c.n_heads / c.n_kv_heads);
      o.first.assign(1, 0);
      for (int g = 0; g < c.n_kv_heads; ++g) {
        o.first.push_back(o.first.back() + rows * static_cast<size_t>(cache.length(l, g)));
      }
      if (o.weights.size() < o.first.back()) o.weights.resize(o.first.back());
    }
    if (!ws.short_runs.empty()) attend_short_runs(l, caches, ws, pool, path, options);
    for (const BatchRun& run : runs) {
      if (run.tree || run.end - run.begin > kShortRun) {
        attend(l, run, *caches[run.seq], ws, pool, path, options);
      }
    }

    if (options.attention_observer != nullptr) {
      for (size_t r = 0; r < runs.size(); ++r) {
        const BatchRun& run = runs[r];
        if (run.tree || !options.attention_observer->wants(run.seq)) continue;
        const ForwardWorkspace::ObservedRun& o = ws.observed_runs[r];
        if (o.first.empty()) {
          observe_attention(c, l, run, *caches[run.seq], ws, pool, *options.attention_observer);
          continue;
        }
        const int n_q = static_cast<int>(run.end - run.begin);
        for (int g = 0; g < c.n_kv_heads; ++g) {
          const size_t at = o.first[static_cast<size_t>(g)];
          const size_t size = o.first[static_cast<size_t>(g) + 1] - at;
          options.attention_observer->observe(
              run.seq, l, g, std::span<const float>(o.weights.data() + at, size), n_q,
              c.n_heads / c.n_kv_heads, caches[run.seq]->length(l, g));
        }
      }
    }

    // After the last layer's attention only the rows whose logits are wanted matter; llama.cpp
    // drops the others after the output projection (whose kernel depends on the batch size), so
    // that projection still takes every row. Every op below is row-independent.
    int64_t rows = n;
    kernels::matmul(w.attn_output, ws.attn.data(), n, proj, pool, path, invariant);
    if (l == c.n_layers - 1 && static_cast<int64_t>(ws.out_rows.size()) < n) {
      compacted = true;
      rows = static_cast<int64_t>(ws.out_rows.size());
      for (int64_t i = 0; i < rows; ++i) {  // out_rows ascending: row i moves down or stays
        const int64_t from = ws.out_rows[static_cast<size_t>(i)];
        if (from == i) continue;
        std::copy_n(x + from * dim, dim, x + i * dim);
        std::copy_n(proj + from * dim, dim, proj + i * dim);
      }
    }
    if (rows == 0) break;
    kernels::add_inplace(x, proj, rows * dim);
    kernels::rms_norm(x, w.ffn_norm, rows, dim, c.rms_eps, h);
    const kernels::MatmulOutput gate_up[] = {{w.ffn_gate, ws.gate.data()},
                                             {w.ffn_up, ws.up.data()}};
    kernels::matmul(gate_up, h, rows, pool, path, invariant);
    kernels::silu_mul_inplace(ws.gate.data(), ws.up.data(), rows, c.ffn_dim, path);
    kernels::matmul(w.ffn_down, ws.gate.data(), rows, proj, pool, path, invariant);
    kernels::add_inplace(x, proj, rows * dim);
  }
  if (capture != nullptr) capture_at(c.n_layers, compacted);
  for (const BatchRun& run : runs) {
    kv::KvCache& cache = *caches[run.seq];
    int32_t next = cache.n_tokens();
    for (int64_t t = run.begin; t < run.end; ++t) next = std::max(next, batch[t].position + 1);
    cache.set_n_tokens(next);
  }

  const auto n_out = static_cast<int64_t>(ws.out_rows.size());
  logits.resize(static_cast<size_t>(n_out * c.n_vocab));
  if (n_out == 0) return ok();
  kernels::rms_norm(x, weights_.output_norm, n_out, dim, c.rms_eps, h);
  kernels::matmul(weights_.output, h, n_out, logits.data(), pool, path, invariant);
  return ok();
}

}  // namespace pareto::model::detail
