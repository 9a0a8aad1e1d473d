#include "bench/model_gen.h"

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "formats/gguf_writer.h"
#include "kernels/quant.h"

namespace pareto::bench {
namespace {

// Dimensions from each model's published config.json (Hugging Face): hidden_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size,
// max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings. Llama 3.2's rope scaling
// (rope_freqs.weight) is left out: it changes values, not the work done per token.
//
// | shape         | source config                  | dim  | layers | heads | kv | ffn   | vocab  |
// |---------------|--------------------------------|------|--------|-------|----|-------|--------|
// | llama-1b      | meta-llama/Llama-3.2-1B        | 2048 | 16     | 32    | 8  | 8192  | 128256 |
// | qwen2.5-0.5b  | Qwen/Qwen2.5-0.5B              | 896  | 24     | 14    | 2  | 4864  | 151936 |
// | llama-7b      | meta-llama/Llama-2-7b-hf       | 4096 | 32     | 32    | 32 | 11008 | 32000  |
// | tiny          | (tests) llama layout, untied   | 128  | 2      | 4     | 2  | 256   | 512    |
// | tiny-qwen2    | (tests) qwen2 layout, tied     | 128  | 2      | 4     | 2  | 256   | 512    |
// | tiny-k        | (tests) llama layout, K-quants | 256  | 2      | 4     | 2  | 512   | 512    |
constexpr std::array<ModelShape, 6> kShapes = {{
    {"llama-1b", "meta-llama/Llama-3.2-1B config.json", "llama", 2048, 16, 32, 8, 8192, 128256,
     131072, 500000.0f, 1e-5f, false, true},
    {"qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B config.json", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768,
     1000000.0f, 1e-6f, true, true},
    {"llama-7b", "meta-llama/Llama-2-7b-hf config.json", "llama", 4096, 32, 32, 32, 11008, 32000,
     4096, 10000.0f, 1e-5f, false, false},
    {"tiny", "test shape (llama layout, untied output)", "llama", 128, 2, 4, 2, 256, 512, 512,
     10000.0f, 1e-5f, false, false},
    {"tiny-qwen2", "test shape (qwen2 layout: qkv bias, tied output)", "qwen2", 128, 2, 4, 2, 256,
     512, 512, 1000000.0f, 1e-6f, true, true},
    {"tiny-k", "test shape (llama layout, rows of 256 for K-quants)", "llama", 256, 2, 4, 2, 512,
     512, 512, 10000.0f, 1e-5f, false, false},
}};

// llama.cpp's llama_ftype for general.file_type.
uint32_t llama_file_type(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return 0;  // LLAMA_FTYPE_ALL_F32
    case TensorType::F16:
      return 1;  // LLAMA_FTYPE_MOSTLY_F16
    case TensorType::Q4_0:
      return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case TensorType::Q8_0:
      return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case TensorType::Q4_K:
      return 14;  // LLAMA_FTYPE_MOSTLY_Q4_K_S
    case TensorType::Q5_K:
      return 16;  // LLAMA_FTYPE_MOSTLY_Q5_K_S
    case TensorType::Q6_K:
      return 18;  // LLAMA_FTYPE_MOSTLY_Q6_K
    default:
      return 32;  // LLAMA_FTYPE_MOSTLY_BF16
  }
}

bool writable_type(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16 ||
         t == TensorType::Q8_0 || t == TensorType::Q4_0 || t == TensorType::Q4_K ||
         t == TensorType::Q5_K || t == TensorType::Q6_K;
}

constexpr std::string_view kWritableTypes = "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K";

// llama.cpp's use_more_bits(i_layer, n_layers).
bool uses_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

// The layer index of "blk.<i>.<rest>", or -1.
int layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return -1;
  int layer = 0;
  size_t i = 4;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i)
    layer = layer * 10 + (name[i] - '0');
  return i > 4 ? layer : -1;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Approximately standard normal from one 64-bit hash: the sum of four 16-bit uniforms
// (Irwin-Hall, n = 4: mean 2, variance 1/3), centred and scaled. Fast, and close enough to a
// normal for weights whose only job is to keep activations in a realistic range.
float normal_from_hash(uint64_t h) {
  const uint32_t sum = static_cast<uint32_t>(h & 0xffff) +
                       static_cast<uint32_t>((h >> 16) & 0xffff) +
                       static_cast<uint32_t>((h >> 32) & 0xffff) + static_cast<uint32_t>(h >> 48);
  constexpr float kInv = 1.0f / 65536.0f;
  constexpr float kInvSd = 1.7320508f;  // 1 / sqrt(1/3)
  return (static_cast<float>(sum) * kInv - 2.0f) * kInvSd;
}

// Tensor values: normal(0, std) hashed from (stream, element index), so the result does not
// depend on how rows are split among threads.
void fill_normal(uint64_t stream, int64_t first, float std_dev, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std_dev * normal_from_hash(splitmix64(stream ^ static_cast<uint64_t>(first + i)));
  }
}

// The tokenizer of a minimal SentencePiece ("llama") vocabulary of n_vocab tokens: <unk>, <s>,
// </s>, the 256 byte tokens, then single characters and "▁"-prefixed lowercase words, so that
// text tokenizes into a mix of word pieces and byte fallbacks as with a real vocabulary.
void add_spm_vocab(formats::GgufWriter& w, int n_vocab) {
  // llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte.
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(n_vocab));
  const auto push = [&](std::string piece, int32_t type) {
    scores.push_back(type == 1 ? -static_cast<float>(tokens.size()) : 0.0f);
    tokens.push_back(std::move(piece));
    types.push_back(type);
  };
  push("<unk>", 2);
  push("<s>", 3);
  push("</s>", 3);
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    push(hex, 6);
  }
  const std::string space = "\xe2\x96\x81";  // U+2581, SentencePiece's word boundary
  push(space, 1);
  const std::string singles =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()";
  for (char c : singles) push(std::string(1, c), 1);
  // "▁" + the bijective base-26 numeral of k: ▁a .. ▁z, ▁aa .. ▁zz, ▁aaa ..
  for (uint64_t k = 1; static_cast<int>(tokens.size()) < n_vocab; ++k) {
    std::string word;
    for (uint64_t v = k; v > 0; v = (v - 1) / 26) word.insert(word.begin(), 'a' + (v - 1) % 26);
    push(space + word, 1);
  }
  tokens.resize(static_cast<size_t>(n_vocab));  // tiny vocabularies stop inside the singles
  scores.resize(tokens.size());
  types.resize(tokens.size());
  w.set("tokenizer.ggml.model", formats::Value::str("llama"));
  w.set("tokenizer.ggml.tokens", formats::Value::str_array(tokens));
  w.set("tokenizer.ggml.scores", formats::Value::f32_array(scores));
  w.set("tokenizer.ggml.token_type", formats::Value::i32_array(types));
  w.set("tokenizer.ggml.bos_token_id", formats::Value::u32(1));
  w.set("tokenizer.ggml.eos_token_id", formats::Value::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", formats::Value::u32(0));
  w.set("tokenizer.ggml.add_bos_token", formats::Value::boolean(true));
  w.set("tokenizer.ggml.add_eos_token", formats::Value::boolean(false));
}

class TensorMaker {
 public:
  TensorMaker(formats::GgufWriter& writer, const GenerateOptions& options, ThreadPool& pool)
      : writer_(writer), options_(options), pool_(pool) {}

  // A [rows, cols] matrix (GGUF shape {cols, rows}) of matrix_type(name).
  Status matrix(const std::string& name, int64_t cols, int64_t rows, int n_layers) {
    const TensorType type = matrix_type(options_, name, n_layers);
    const int64_t row_size = row_bytes(type, cols);
    std::vector<uint8_t> data(static_cast<size_t>(row_size * rows));
    const uint64_t stream = next_stream();
    const float std_dev = options_.weight_std;
    pool_.parallel_for(static_cast<size_t>(rows), [&](size_t begin, size_t end, int) {
      std::vector<float> row(static_cast<size_t>(cols));
      for (size_t r = begin; r < end; ++r) {
        fill_normal(stream, static_cast<int64_t>(r) * cols, std_dev, row.data(), cols);
        kernels::quantize_row(type, row.data(), data.data() + static_cast<int64_t>(r) * row_size,
                              cols);
      }
    });
    return writer_.add_tensor(name, type, {cols, rows}, std::move(data));
  }

  // A 1-D F32 tensor: all `value` (norm weights), or normal(0, weight_std) when random (biases).
  Status vector(const std::string& name, int64_t n, bool random, float value = 1.0f) {
    std::vector<float> v(static_cast<size_t>(n), value);
    const uint64_t stream = next_stream();
    if (random) fill_normal(stream, 0, options_.weight_std, v.data(), n);
    std::vector<uint8_t> data(v.size() * sizeof(float));
    std::memcpy(data.data(), v.data(), data.size());
    return writer_.add_tensor(name, TensorType::F32, {n}, std::move(data));
  }

 private:
  uint64_t next_stream() { return splitmix64(options_.seed * 0x100000001b3ull + ++tensor_index_); }

  formats::GgufWriter& writer_;
  const GenerateOptions& options_;
  ThreadPool& pool_;
  uint64_t tensor_index_ = 0;
};

int layer_count(const ModelShape& shape, const GenerateOptions& options) {
  return options.n_layers > 0 ? options.n_layers : shape.n_layers;
}

}  // namespace

TensorType matrix_type(const GenerateOptions& options, std::string_view name, int n_layers) {
  if (options.mix == TypeMix::kUniform) return options.type;
  if (name == "output.weight") return TensorType::Q6_K;
  const bool more_bits_tensor =
      name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight");
  const int layer = layer_of(name);
  if (more_bits_tensor && layer >= 0 && uses_more_bits(layer, n_layers)) return TensorType::Q6_K;
  return TensorType::Q4_K;
}

std::span<const ModelShape> model_shapes() {
  return kShapes;
}

Result<ModelShape> find_model_shape(std::string_view name) {
  std::string known;
  for (const ModelShape& s : kShapes) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + std::string(s.name);
  }
  return make_error("gen-model: unknown shape '", name, "' (known: ", known, ")");
}

uint64_t generated_data_bytes(const ModelShape& shape, const GenerateOptions& options) {
  const int n_layers = layer_count(shape, options);
  const auto mat = [&](std::string_view name, int64_t cols, int64_t rows) {
    return static_cast<uint64_t>(row_bytes(matrix_type(options, name, n_layers), cols) * rows);
  };
  const int64_t head_dim = shape.dim / shape.n_heads;
  const int64_t kv_dim = head_dim * shape.n_kv_heads;
  const uint64_t vec = sizeof(float);
  uint64_t total = mat("token_embd.weight", shape.dim, shape.n_vocab) + shape.dim * vec;
  if (!shape.tied_output) total += mat("output.weight", shape.dim, shape.n_vocab);
  for (int i = 0; i < n_layers; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".";
    total += mat(blk + "attn_q.weight", shape.dim, shape.dim) +
             mat(blk + "attn_k.weight", shape.dim, kv_dim) +
             mat(blk + "attn_v.weight", shape.dim, kv_dim) +
             mat(blk + "attn_output.weight", shape.dim, shape.dim) +
             mat(blk + "ffn_gate.weight", shape.dim, shape.ffn_dim) +
             mat(blk + "ffn_down.weight", shape.ffn_dim, shape.dim) +
             mat(blk + "ffn_up.weight", shape.dim, shape.ffn_dim) + 2 * shape.dim * vec;
    if (shape.qkv_bias) total += (shape.dim + 2 * kv_dim) * vec;
  }
  return total;
}

Status generate_model(const ModelShape& shape, const GenerateOptions& options,
                      const std::string& path, ThreadPool& pool) {
  if (options.mix == TypeMix::kUniform && !writable_type(options.type)) {
    return make_error("gen-model: type ", type_name(options.type),
                      " not supported (supported: ", kWritableTypes, ")");
  }
  const TensorType block_type = options.mix == TypeMix::kUniform ? options.type : TensorType::Q4_K;
  const int64_t block = traits(block_type).block_size;
  if (shape.dim % shape.n_heads != 0 || shape.n_heads % shape.n_kv_heads != 0) {
    return make_error("gen-model: shape '", shape.name, "': dim ", shape.dim, ", heads ",
                      shape.n_heads, " and kv heads ", shape.n_kv_heads, " do not divide");
  }
  if (shape.dim % block != 0 || shape.ffn_dim % block != 0) {
    return make_error("gen-model: shape '", shape.name, "': dim ", shape.dim, " and ffn ",
                      shape.ffn_dim, " must be multiples of ", block, " for type ",
                      type_name(block_type));
  }
  const int n_layers = layer_count(shape, options);
  const int head_dim = shape.dim / shape.n_heads;
  const int64_t kv_dim = int64_t{head_dim} * shape.n_kv_heads;
  const std::string a = std::string(shape.arch) + ".";
  using formats::Value;

  formats::GgufWriter w;
  w.set("general.architecture", Value::str(std::string(shape.arch)));
  const bool q4_k_m = options.mix == TypeMix::kQ4_K_M;
  w.set("general.name", Value::str(str_cat("random ", shape.name, " ",
                                           q4_k_m ? "Q4_K_M" : type_name(options.type))));
  // LLAMA_FTYPE_MOSTLY_Q4_K_M = 15.
  w.set("general.file_type", Value::u32(q4_k_m ? 15 : llama_file_type(options.type)));
  w.set("general.quantization_version", Value::u32(2));
  w.set(a + "context_length", Value::u32(static_cast<uint32_t>(shape.context_length)));
  w.set(a + "embedding_length", Value::u32(static_cast<uint32_t>(shape.dim)));
  w.set(a + "block_count", Value::u32(static_cast<uint32_t>(n_layers)));
  w.set(a + "feed_forward_length", Value::u32(static_cast<uint32_t>(shape.ffn_dim)));
  w.set(a + "rope.dimension_count", Value::u32(static_cast<uint32_t>(head_dim)));
  w.set(a + "attention.head_count", Value::u32(static_cast<uint32_t>(shape.n_heads)));
  w.set(a + "attention.head_count_kv", Value::u32(static_cast<uint32_t>(shape.n_kv_heads)));
  w.set(a + "rope.freq_base", Value::f32(shape.rope_base));
  w.set(a + "attention.layer_norm_rms_epsilon", Value::f32(shape.rms_eps));
  w.set(a + "vocab_size", Value::u32(static_cast<uint32_t>(shape.n_vocab)));
  add_spm_vocab(w, shape.n_vocab);

  TensorMaker t(w, options, pool);
  PARETO_RETURN_IF_ERROR(t.matrix("token_embd.weight", shape.dim, shape.n_vocab, n_layers));
  PARETO_RETURN_IF_ERROR(t.vector("output_norm.weight", shape.dim, false));
  if (!shape.tied_output) {
    PARETO_RETURN_IF_ERROR(t.matrix("output.weight", shape.dim, shape.n_vocab, n_layers));
  }
  for (int i = 0; i < n_layers; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".";
    PARETO_RETURN_IF_ERROR(t.vector(blk + "attn_norm.weight", shape.dim, false));
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "attn_q.weight", shape.dim, shape.dim, n_layers));
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "attn_k.weight", shape.dim, kv_dim, n_layers));
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "attn_v.weight", shape.dim, kv_dim, n_layers));
    if (shape.qkv_bias) {
      PARETO_RETURN_IF_ERROR(t.vector(blk + "attn_q.bias", shape.dim, true));
      PARETO_RETURN_IF_ERROR(t.vector(blk + "attn_k.bias", kv_dim, true));
      PARETO_RETURN_IF_ERROR(t.vector(blk + "attn_v.bias", kv_dim, true));
    }
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "attn_output.weight", shape.dim, shape.dim, n_layers));
    PARETO_RETURN_IF_ERROR(t.vector(blk + "ffn_norm.weight", shape.dim, false));
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "ffn_gate.weight", shape.dim, shape.ffn_dim, n_layers));
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "ffn_down.weight", shape.ffn_dim, shape.dim, n_layers));
    PARETO_RETURN_IF_ERROR(t.matrix(blk + "ffn_up.weight", shape.dim, shape.ffn_dim, n_layers));
  }
  return w.write(path);
}

}  // namespace pareto::bench
