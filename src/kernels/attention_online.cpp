// The online-softmax attention driver (attention_online.h): blocks, GQA grouping, the running
// maximum and sum, and the normalization; the kernel set supplies the vector work.
#include "kernels/attention_online.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pareto::kernels {
namespace {

// Running state of one query head.
struct HeadState {
  const float* q = nullptr;
  float* out = nullptr;
  float max = -INFINITY;
  float sum = 0.0f;
};

}  // namespace

void online_attention_items(const AttentionArgs& a, int64_t begin, int64_t end,
                            const OnlineAttentionOps& ops) {
  const int hd = a.head_dim;
  const int group = a.n_heads / a.n_kv_heads;
  std::vector<float> acc(static_cast<size_t>(group) * static_cast<size_t>(hd));
  std::vector<HeadState> heads(static_cast<size_t>(group));
  float scores[kOnlineBlock] = {};  // lanes past a short block keep earlier (masked) values
  float p[kOnlineBlock];
  for (int64_t first = begin; first < end;) {
    // The run of items [first, last) of one token whose heads share a KV head.
    const int64_t t = first / a.n_heads;
    const int h0 = static_cast<int>(first % a.n_heads);
    const int g = h0 / group;
    const int64_t last = std::min<int64_t>(end, t * a.n_heads + (g + 1) * group);
    const int n_run = static_cast<int>(last - first);
    const KvHeadView& kv = a.kv[static_cast<size_t>(g)];
    const int32_t q_pos = a.q_positions[t];
    for (int r = 0; r < n_run; ++r) {
      heads[static_cast<size_t>(r)] = {a.q + (first + r) * hd, a.out + (first + r) * hd, -INFINITY,
                                       0.0f};
    }
    std::fill(acc.begin(), acc.end(), 0.0f);
    const int visible = visible_end(kv, q_pos);
    for (int j0 = 0; j0 < visible; j0 += kOnlineBlock) {
      const int n_keys = std::min(kOnlineBlock, visible - j0);
      uint32_t mask = 0;
      for (int m = 0; m < n_keys; ++m) {
        if (kv.positions[j0 + m] <= q_pos) mask |= uint32_t{1} << m;
      }
      if (mask == 0) continue;
      const float* keys = kv.keys + static_cast<int64_t>(j0) * hd;
      const float* values = kv.values + static_cast<int64_t>(j0) * hd;
      for (int r = 0; r < n_run; ++r) {
        HeadState& st = heads[static_cast<size_t>(r)];
        ops.score_keys(keys, n_keys, st.q, hd, scores);
        float rescale = 1.0f;
        const float block_sum = ops.softmax_block(scores, mask, a.scale, &st.max, &rescale, p);
        st.sum = st.sum * rescale + block_sum;
        ops.accumulate(acc.data() + static_cast<size_t>(r) * hd, rescale, values, p, n_keys, hd);
      }
    }
    for (int r = 0; r < n_run; ++r) {
      const HeadState& st = heads[static_cast<size_t>(r)];
      const float inv = st.sum == 0.0f ? 0.0f : 1.0f / st.sum;
      const float* ar = acc.data() + static_cast<size_t>(r) * hd;
      for (int d = 0; d < hd; ++d) st.out[d] = ar[d] * inv;
    }
    first = last;
  }
}

}  // namespace pareto::kernels
