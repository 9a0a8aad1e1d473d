// Hyperparameters and weight binding of llama-family files, validated before any use.
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "kernels/kernel_path.h"
#include "kernels/quant.h"
#include "model/decoder.h"

namespace pareto::model::detail {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Reads a positive integer `<arch>.<suffix>`; `fallback` (when > 0) stands in for a missing key.
Result<int> read_count(const formats::Metadata& md, const std::string& key, int fallback = 0) {
  if (fallback > 0 && !md.contains(key)) return fallback;
  PARETO_TRY(const uint64_t v, md.get_uint(key));
  if (v == 0 || v > (1u << 30)) {
    return make_error("model: ", md.source(), ": metadata key '", key,
                      "': expected a positive count, found ", v);
  }
  return static_cast<int>(v);
}

// Looks tensors up by name and checks them against what the config implies.
class TensorBinder {
 public:
  explicit TensorBinder(const formats::ModelFile& file) : file_(file) {}

  // A weight matrix with `rows` outputs of `cols` inputs: GGUF shape {cols, rows}.
  Result<kernels::WeightView> matrix(const std::string& name, int64_t cols, int64_t rows) const {
    PARETO_TRY(const formats::TensorInfo* t, find(name, {cols, rows}));
    if (!is_supported_weight_type(t->type)) {
      return make_error(prefix(name), "type ", type_name(t->type),
                        " not supported (supported: ", supported_weight_types_list(), ")");
    }
    const int64_t block = traits(t->type).block_size;
    if (cols % block != 0) {
      return make_error(prefix(name), "type ", type_name(t->type),
                        " needs a row length that is a multiple of ", block, ", found ", cols);
    }
    return kernels::WeightView{t->type, t->data, rows, cols};
  }

  // A 1-D F32 tensor of n elements (norm weights, biases).
  Result<const float*> vector(const std::string& name, int64_t n) const {
    PARETO_TRY(const formats::TensorInfo* t, find(name, {n}));
    if (t->type != TensorType::F32) {
      return make_error(prefix(name), "type ", type_name(t->type),
                        " not supported for a 1-D tensor (expected F32)");
    }
    return reinterpret_cast<const float*>(t->data);
  }

  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

 private:
  std::string prefix(const std::string& name) const {
    return str_cat("model: ", file_.path(), ": tensor '", name, "': ");
  }

  Result<const formats::TensorInfo*> find(const std::string& name,
                                          const std::vector<int64_t>& shape) const {
    const formats::TensorInfo* t = file_.find_tensor(name);
    if (t == nullptr) return make_error("model: ", file_.path(), ": missing tensor '", name, "'");
    if (t->shape != shape) {
      return make_error(prefix(name), "shape expected ", shape_string(shape), ", found ",
                        shape_string(t->shape));
    }
    if (t->data == nullptr) return make_error(prefix(name), "no data");
    return t;
  }

  const formats::ModelFile& file_;
};

// Every weight matrix with its tensor name, in the order one decode step reads them: the layers',
// then the output projection (named token_embd.weight when tied to the embedding), then, untied,
// the embedding (get_rows reads a few of its rows).
std::vector<std::pair<std::string, kernels::WeightView*>> named_matrices(DecoderWeights& w,
                                                                         bool tied_output) {
  std::vector<std::pair<std::string, kernels::WeightView*>> named;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    LayerWeights& l = w.layers[i];
    const std::string blk = "blk." + std::to_string(i) + ".";
    for (auto [name, v] : {std::pair{"attn_q", &l.attn_q},
                           {"attn_k", &l.attn_k},
                           {"attn_v", &l.attn_v},
                           {"attn_output", &l.attn_output},
                           {"ffn_gate", &l.ffn_gate},
                           {"ffn_up", &l.ffn_up},
                           {"ffn_down", &l.ffn_down}}) {
      named.emplace_back(blk + name + ".weight", v);
    }
  }
  named.emplace_back(tied_output ? "token_embd.weight" : "output.weight", &w.output);
  if (!tied_output) named.emplace_back("token_embd.weight", &w.token_embd);
  return named;
}

// The matrices one decode step reads, in that order (the layers', then the output projection).
std::vector<kernels::WeightView*> matrices_in_read_order(DecoderWeights& w) {
  std::vector<kernels::WeightView*> views;
  for (const auto& named : named_matrices(w, /*tied_output=*/true)) views.push_back(named.second);
  return views;
}

size_t align64(size_t bytes) {
  return (bytes + 63) / 64 * 64;
}

// Packs each Q4_0 / Q8_0 / Q4_K / Q6_K matrix once (the tied output shares token_embd's data: one
// copy) for the AVX-512 VNNI kernels, then drops the raw pages of the packed rows from RSS so that
// the process holds about one copy of the weights; they refault from the page cache if read again
// (rows after the last 16-row group, the scalar path; get_rows reads the packed copy).
void pack_matrices(const formats::ModelFile& file, DecoderWeights& w) {
  if (!kernels::packed_kernels_supported()) return;
  const std::vector<kernels::WeightView*> views = matrices_in_read_order(w);
  // One buffer for every packed matrix (huge pages, see PackedWeights), matrices at 64-byte
  // aligned offsets in the order decode reads them. A matrix seen twice (tied) is packed once.
  std::map<const uint8_t*, size_t> offset;  // raw data -> offset of its packed copy
  size_t total = 0;
  for (const kernels::WeightView* v : views) {
    if (!kernels::packable(*v) || offset.count(v->data) != 0) continue;
    offset[v->data] = total;
    total += kernels::packed_bytes(*v);  // a multiple of 64
  }
  if (total == 0) return;
  kernels::PackedWeights arena = kernels::PackedWeights::allocate(total);
  if (arena.empty()) return;              // out of memory: the raw kernels run instead
  std::map<const uint8_t*, bool> packed;  // raw data -> packed
  for (kernels::WeightView* v : views) {
    const auto it = offset.find(v->data);
    if (it == offset.end()) continue;
    uint8_t* dst = arena.mutable_data() + it->second;
    auto [done, fresh] = packed.try_emplace(v->data, false);
    if (fresh) {
      done->second = kernels::pack_weights_into(
          *v, dst, nullptr, [&file](const uint8_t* raw, size_t n) { file.release_pages(raw, n); });
    }
    if (done->second) v->packed = dst;
  }
  w.packed.push_back(std::move(arena));
  // Tied output: get_rows reads the embedding rows from the packed copy, not the released pages.
  if (w.token_embd.data == w.output.data) w.token_embd.packed = w.output.packed;
}

// Copies the mapped matrices that were not packed (F32, F16, BF16, Q5_K, Q4_0 with rows % 8 != 0,
// any type without AVX-512 VNNI) byte for byte into one huge-page buffer, in read order, and
// drops their file pages from RSS. Same bytes, same kernels: only the pages differ. A mapped file
// sits on 4 KiB pages; decode streams every weight once per token, and at 2.5 GB per token (F16
// at the Llama-3.2-1B shape) the TLB misses cost about 9% of decode speed (docs/benchmarks.md).
// Copies n mapped bytes to dst in chunks of about 8 MiB, releasing each chunk's file pages once
// copied, so that the two copies of a large matrix (the output: 525 MB at F16) are never resident
// together. Chunks end on page boundaries, so their released interiors tile the range.
void copy_releasing(const formats::ModelFile& file, const uint8_t* mapped, size_t n, uint8_t* dst) {
  constexpr uintptr_t kChunk = uintptr_t{8} << 20, kPage = 4096;
  const uint8_t* p = mapped;
  const uint8_t* const end = mapped + n;
  while (p < end) {
    const uint8_t* next = end;
    if (static_cast<size_t>(end - p) > kChunk) {
      const uintptr_t cut = (reinterpret_cast<uintptr_t>(p) + kChunk) & ~(kPage - 1);
      next = mapped + (cut - reinterpret_cast<uintptr_t>(mapped));
    }
    std::memcpy(dst + (p - mapped), p, static_cast<size_t>(next - p));
    file.release_pages(p, static_cast<size_t>(next - p));
    p = next;
  }
}

void copy_unpacked_matrices(const formats::ModelFile& file, DecoderWeights& w) {
  const std::vector<kernels::WeightView*> views = matrices_in_read_order(w);
  const auto bytes = [](const kernels::WeightView& v) {
    return static_cast<size_t>(v.rows * v.row_bytes());
  };
  const auto wanted = [&](const kernels::WeightView& v) {
    return v.packed == nullptr && file.is_mapped(v.data, bytes(v));
  };
  std::map<const uint8_t*, size_t> offset;  // mapped data -> offset of its copy
  size_t total = 0;
  for (const kernels::WeightView* v : views) {
    if (!wanted(*v) || offset.count(v->data) != 0) continue;
    offset[v->data] = total;
    total += align64(bytes(*v));
  }
  if (total == 0) return;
  kernels::PackedWeights arena = kernels::PackedWeights::allocate(total);
  if (arena.empty()) return;  // out of memory: the kernels read the mapping instead
  std::map<const uint8_t*, const uint8_t*> moved;  // mapped data -> its copy
  for (kernels::WeightView* v : views) {
    const auto it = offset.find(v->data);
    if (it == offset.end()) continue;
    const uint8_t* mapped = v->data;
    uint8_t* dst = arena.mutable_data() + it->second;
    if (moved.try_emplace(mapped, dst).second) {
      copy_releasing(file, mapped, bytes(*v), dst);
      std::memset(dst + bytes(*v), 0, align64(bytes(*v)) - bytes(*v));  // defined padding
    }
    if (w.token_embd.data == mapped) w.token_embd.data = dst;  // tied: get_rows reads the copy
    v->data = dst;
  }
  w.packed.push_back(std::move(arena));
}

// The type llama-quantize (build de3ff81, llama_tensor_get_type) gives a matrix of a file it
// quantizes to `type`, so that a model converted here computes what that file would: the output
// projection (the embedding when tied) stays Q8_0 when its rows are not a multiple of 256 (else
// Q6_K) for 4-bit types; a matrix whose rows are not a multiple of the type's block falls back to
// F16; every other matrix takes `type`. F16 and BF16 apply to every matrix.
TensorType converted_type(const kernels::WeightView& v, bool is_output, TensorType type) {
  if (type == TensorType::F16 || type == TensorType::BF16) return type;
  if (is_output && type != TensorType::Q8_0) {
    if (v.cols % 256 == 0) return TensorType::Q6_K;
    type = TensorType::Q8_0;
  }
  return v.cols % traits(type).block_size == 0 ? type : TensorType::F16;
}

// ModelLoadOptions::weight_type: converts each float matrix (F32, F16, BF16) row by row through
// f32 into one owned buffer, in read order, with llama-quantize's reference rounding
// (kernels::quantize_row), and releases the mapped pages it came from (a llama2.c checkpoint's
// heap copy stays). A matrix already of its type is left where it is. Quantized matrices are
// refused: converting them again would compound two roundings (llama-quantize asks for
// --allow-requantize).
Status convert_matrices(const formats::ModelFile& file, DecoderWeights& w, bool tied_output,
                        TensorType type) {
  const auto named = named_matrices(w, tied_output);
  std::vector<TensorType> to;
  size_t total = 0;
  for (const auto& [name, v] : named) {
    if (v->type != TensorType::F32 && v->type != TensorType::F16 && v->type != TensorType::BF16) {
      return make_error_code(ErrorCode::kInvalidArgument, "model: ", file.path(), ": tensor '",
                             name, "' is ", type_name(v->type), ": weight type ", type_name(type),
                             " converts F32, F16 and BF16 matrices only");
    }
    to.push_back(converted_type(*v, v == &w.output, type));
    if (to.back() != v->type)
      total += align64(static_cast<size_t>(v->rows * row_bytes(to.back(), v->cols)));
  }
  if (total == 0) return ok();
  kernels::PackedWeights arena = kernels::PackedWeights::allocate(total);
  if (arena.empty()) {
    return make_error_code(ErrorCode::kResourceExhausted, "model: ", file.path(),
                           ": no memory for the weights converted to ", type_name(type), " (",
                           total, " bytes)");
  }
  std::vector<float> row;
  size_t offset = 0;
  for (size_t i = 0; i < named.size(); ++i) {
    kernels::WeightView& v = *named[i].second;
    if (to[i] == v.type) continue;
    const kernels::WeightView from = v;
    uint8_t* dst = arena.mutable_data() + offset;
    const int64_t dst_row = row_bytes(to[i], v.cols);
    row.resize(static_cast<size_t>(v.cols));
    for (int64_t r = 0; r < v.rows; ++r) {
      kernels::dequantize_row(from.type, from.row(r), row.data(), v.cols);
      kernels::quantize_row(to[i], row.data(), dst + r * dst_row, v.cols);
    }
    const size_t bytes = static_cast<size_t>(v.rows * dst_row);
    std::memset(dst + bytes, 0, align64(bytes) - bytes);  // defined padding
    offset += align64(bytes);
    v.type = to[i];
    v.data = dst;
    file.release_pages(from.data, static_cast<size_t>(from.rows * from.row_bytes()));
  }
  if (tied_output) w.token_embd = w.output;
  w.packed.push_back(std::move(arena));
  return ok();
}

// Puts the matrices where the fast kernels read them best: packed, or copied onto huge pages.
// Skipped for the scalar kernels, or when the caller asks (the kernels then read the mapped file
// as it is: to compare against the raw kernels, or to keep one shared copy in the page cache).
void place_matrices(const formats::ModelFile& file, DecoderWeights& w, kernels::KernelPath path,
                    bool place_weights) {
  if (path == kernels::KernelPath::kScalar || !place_weights) return;
  pack_matrices(file, w);
  copy_unpacked_matrices(file, w);
}

}  // namespace

Result<ModelConfig> read_decoder_config(const formats::ModelFile& file, const std::string& arch) {
  const formats::Metadata& md = file.metadata();
  const std::string p = arch + ".";
  ModelConfig c;
  c.arch = arch;
  PARETO_TRY(c.dim, read_count(md, p + "embedding_length"));
  PARETO_TRY(c.n_layers, read_count(md, p + "block_count"));
  PARETO_TRY(c.n_heads, read_count(md, p + "attention.head_count"));
  PARETO_TRY(c.n_kv_heads, read_count(md, p + "attention.head_count_kv", c.n_heads));
  PARETO_TRY(c.ffn_dim, read_count(md, p + "feed_forward_length"));
  PARETO_TRY(c.context_length, read_count(md, p + "context_length"));
  PARETO_TRY(const double eps, md.get_float(p + "attention.layer_norm_rms_epsilon"));
  c.rms_eps = static_cast<float>(eps);
  if (c.dim % c.n_heads != 0) {
    return make_error("model: ", file.path(), ": ", p, "embedding_length ", c.dim,
                      " is not a multiple of ", p, "attention.head_count ", c.n_heads);
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return make_error("model: ", file.path(), ": ", p, "attention.head_count ", c.n_heads,
                      " is not a multiple of ", p, "attention.head_count_kv ", c.n_kv_heads);
  }
  PARETO_TRY(c.head_dim, read_count(md, p + "attention.key_length", c.dim / c.n_heads));
  PARETO_TRY(const int value_dim, read_count(md, p + "attention.value_length", c.head_dim));
  if (value_dim != c.head_dim) {
    return make_error("model: ", file.path(), ": ", p, "attention.value_length ", value_dim,
                      " differs from the key length ", c.head_dim, " (not supported)");
  }
  PARETO_TRY(c.rope_dim, read_count(md, p + "rope.dimension_count", c.head_dim));
  if (c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim) {
    return make_error("model: ", file.path(), ": ", p,
                      "rope.dimension_count: expected an even value <= ", c.head_dim,
                      " (head dim), found ", c.rope_dim);
  }
  const formats::TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr)
    return make_error("model: ", file.path(), ": missing tensor 'token_embd.weight'");
  if (embd->shape.size() != 2 || embd->shape[1] <= 0 || embd->shape[1] > (int64_t{1} << 31)) {
    return make_error("model: ", file.path(), ": tensor 'token_embd.weight': shape expected [",
                      c.dim, ", n_vocab], found ", shape_string(embd->shape));
  }
  c.n_vocab = static_cast<int>(embd->shape[1]);
  PARETO_RETURN_IF_ERROR(read_rope_config(file, arch, c));
  PARETO_RETURN_IF_ERROR(refuse_unsupported_keys(file, arch));
  return c;
}

kernels::KernelPath resolve_kernel_path(const ModelLoadOptions& options) {
  return options.kernel_path ? *options.kernel_path : kernels::native_kernel_path();
}

Result<DecoderWeights> bind_decoder_weights(const formats::ModelFile& file, ModelConfig& config,
                                            const ModelLoadOptions& options) {
  const TensorBinder b(file);
  const int64_t dim = config.dim;
  const int64_t q_dim = int64_t{config.n_heads} * config.head_dim;
  const int64_t kv_dim = int64_t{config.n_kv_heads} * config.head_dim;
  DecoderWeights w;
  PARETO_TRY(w.token_embd, b.matrix("token_embd.weight", dim, config.n_vocab));
  PARETO_TRY(w.output_norm, b.vector("output_norm.weight", dim));
  config.tied_output = !b.has("output.weight");
  if (config.tied_output) {
    w.output = w.token_embd;
  } else {
    PARETO_TRY(w.output, b.matrix("output.weight", dim, config.n_vocab));
  }
  w.layers.resize(static_cast<size_t>(config.n_layers));
  for (int i = 0; i < config.n_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string blk = "blk." + std::to_string(i) + ".";
    PARETO_TRY(l.attn_norm, b.vector(blk + "attn_norm.weight", dim));
    PARETO_TRY(l.attn_q, b.matrix(blk + "attn_q.weight", dim, q_dim));
    PARETO_TRY(l.attn_k, b.matrix(blk + "attn_k.weight", dim, kv_dim));
    PARETO_TRY(l.attn_v, b.matrix(blk + "attn_v.weight", dim, kv_dim));
    if (config.qkv_bias) {
      PARETO_TRY(l.bias_q, b.vector(blk + "attn_q.bias", q_dim));
      PARETO_TRY(l.bias_k, b.vector(blk + "attn_k.bias", kv_dim));
      PARETO_TRY(l.bias_v, b.vector(blk + "attn_v.bias", kv_dim));
    }
    PARETO_TRY(l.attn_output, b.matrix(blk + "attn_output.weight", q_dim, dim));
    PARETO_TRY(l.ffn_norm, b.vector(blk + "ffn_norm.weight", dim));
    PARETO_TRY(l.ffn_gate, b.matrix(blk + "ffn_gate.weight", dim, config.ffn_dim));
    PARETO_TRY(l.ffn_up, b.matrix(blk + "ffn_up.weight", dim, config.ffn_dim));
    PARETO_TRY(l.ffn_down, b.matrix(blk + "ffn_down.weight", config.ffn_dim, dim));
  }
  PARETO_RETURN_IF_ERROR(refuse_unused_tensors(file, config));
  if (options.weight_type) {
    PARETO_RETURN_IF_ERROR(convert_matrices(file, w, config.tied_output, *options.weight_type));
  }
  place_matrices(file, w, resolve_kernel_path(options), options.place_weights);
  return w;
}

}  // namespace pareto::model::detail
