// The online-softmax attention driver (attention_online.h): blocks, GQA grouping, the running
// maximum and sum, and the normalization; the kernel set supplies the vector work.
#include "kernels/attention_online.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pareto::kernels {
namespace {

// Running state of one query (token, head).
struct QueryState {
  const float* q = nullptr;
  float* out = nullptr;
  int32_t pos = 0;
  int visible = 0;  // one past its last visible entry
  float max = -INFINITY;
  float sum = 0.0f;
};

}  // namespace

void online_attention_items(const AttentionArgs& a, int64_t begin, int64_t end,
                            const OnlineAttentionOps& ops) {
  const int hd = a.head_dim;
  const int group = a.n_heads / a.n_kv_heads;
  const int64_t per_kv_head = static_cast<int64_t>(a.n_tokens) * group;
  std::vector<QueryState> queries;
  std::vector<float> acc;
  std::vector<float> block;         // a block's keys, then its values, when read through kv.reader
  float scores[kOnlineBlock] = {};  // lanes past a short block keep earlier (masked) values
  float p[kOnlineQueries][kOnlineBlock];
  for (int64_t first = begin; first < end;) {
    // The items [first, last) of one KV head: queries (token, head) in token order.
    const int g = static_cast<int>(first / per_kv_head);
    const int64_t last = std::min<int64_t>(end, (g + 1) * per_kv_head);
    const KvHeadView& kv = a.kv[static_cast<size_t>(g)];
    queries.clear();
    int visible = 0;
    for (int64_t i = first; i < last; ++i) {
      const int64_t t = (i - g * per_kv_head) / group;
      const int64_t row = t * a.n_heads + g * group + (i - g * per_kv_head) % group;
      QueryState st;
      st.q = a.q + row * hd;
      st.out = a.out + row * hd;
      st.pos = a.q_positions[t];
      st.visible = visible_end(kv, st.pos);
      visible = std::max(visible, st.visible);
      queries.push_back(st);
    }
    acc.assign(queries.size() * static_cast<size_t>(hd), 0.0f);
    if (kv.reader.read != nullptr) block.resize(2 * kOnlineBlock * static_cast<size_t>(hd));
    // Block-major: each block of keys and values is read once for all the queries of the run.
    for (int j0 = 0; j0 < visible; j0 += kOnlineBlock) {
      const float* keys;
      const float* values;
      if (kv.reader.read != nullptr) {  // (keys and values are null then)
        float* k = block.data();
        float* v = k + kOnlineBlock * hd;
        kv.reader.read(kv.reader.context, j0, std::min(kOnlineBlock, visible - j0), k, v);
        keys = k;
        values = v;
      } else {
        keys = kv.keys + static_cast<int64_t>(j0) * hd;
        values = kv.values + static_cast<int64_t>(j0) * hd;
      }
      // Runs of up to kOnlineQueries queries of one token (the same mask) share an accumulate.
      for (size_t u0 = 0; u0 < queries.size();) {
        const int32_t pos = queries[u0].pos;
        size_t u1 = u0 + 1;
        while (u1 < queries.size() && u1 - u0 < kOnlineQueries && queries[u1].pos == pos) ++u1;
        const int q_visible = queries[u0].visible;
        if (j0 < q_visible) {
          const int n_keys = std::min(kOnlineBlock, q_visible - j0);
          uint32_t mask = 0;
          for (int m = 0; m < n_keys; ++m) {
            if (kv.positions[j0 + m] <= pos) mask |= uint32_t{1} << m;
          }
          if (mask != 0) {
            float* accs[kOnlineQueries];
            float rescale[kOnlineQueries];
            const float* ps[kOnlineQueries];
            const int n_queries = static_cast<int>(u1 - u0);
            for (int k = 0; k < n_queries; ++k) {
              QueryState& st = queries[u0 + static_cast<size_t>(k)];
              ops.score_keys(keys, n_keys, st.q, hd, scores);
              const float block_sum =
                  ops.softmax_block(scores, mask, a.scale, &st.max, &rescale[k], p[k]);
              st.sum = st.sum * rescale[k] + block_sum;
              accs[k] = acc.data() + (u0 + static_cast<size_t>(k)) * static_cast<size_t>(hd);
              ps[k] = p[k];
            }
            ops.accumulate(accs, rescale, values, ps, n_queries, n_keys, hd);
          }
        }
        u0 = u1;
      }
    }
    for (size_t u = 0; u < queries.size(); ++u) {
      const QueryState& st = queries[u];
      const float inv = st.sum == 0.0f ? 0.0f : 1.0f / st.sum;
      const float* ar = acc.data() + u * static_cast<size_t>(hd);
      for (int d = 0; d < hd; ++d) st.out[d] = ar[d] * inv;
    }
    first = last;
  }
}

}  // namespace pareto::kernels
