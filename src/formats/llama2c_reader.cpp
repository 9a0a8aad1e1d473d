// llama2.c checkpoints (version-0 header) and tokenizer.bin, exposed as a ModelFile with the names,
// shapes and metadata llama.cpp's convert-llama2c-to-ggml writes, so both formats load through
// one path. Weights stay in the mmap; nothing is copied.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>

#include "formats/model_file.h"

namespace pareto::formats {
namespace {

constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);
// Token ids and types as the converter assigns them (llama_token_type).
constexpr uint32_t kUnknownTokenId = 0;
constexpr uint32_t kBosTokenId = 1;
constexpr uint32_t kEosTokenId = 2;
constexpr int32_t kTokenTypeNormal = 1;
constexpr int32_t kTokenTypeUnknown = 2;
constexpr int32_t kTokenTypeControl = 3;
constexpr int32_t kTokenTypeByte = 6;

struct Config {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

std::string describe(const Config& c) {
  return str_cat("dim ", c.dim, ", hidden_dim ", c.hidden_dim, ", n_layers ", c.n_layers,
                 ", n_heads ", c.n_heads, ", n_kv_heads ", c.n_kv_heads, ", vocab_size ",
                 c.vocab_size, ", seq_len ", c.seq_len);
}

// Far beyond any file, and small enough that no product or sum of the header's sizes can wrap.
constexpr uint64_t kLimit = uint64_t{1} << 62;

// a*b, or nullopt past kLimit.
std::optional<uint64_t> mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > kLimit / a) return std::nullopt;
  return a * b;
}

// The converter's test for byte tokens is sscanf(text, "<0x%02hhX>") == 1: "<0x", optional
// whitespace, then a hex digit (optionally signed); the closing '>' is not checked.
bool looks_like_byte_token(const std::string& text) {
  if (text.compare(0, 3, "<0x") != 0) return false;
  size_t i = 3;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  return i < text.size() && std::isxdigit(static_cast<unsigned char>(text[i]));
}

// SentencePiece's whitespace marker U+2581, as llama_escape_whitespaces writes it.
std::string escape_whitespace(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == ' ') {
      out += "\xe2\x96\x81";
    } else {
      out += c;
    }
  }
  return out;
}

// Reads tokenizer.bin: int32 max_token_length, then per token float score, int32 length, bytes.
// `path` names the bytes in errors.
Status read_tokenizer(std::span<const uint8_t> bytes, const std::string& path, uint32_t vocab_size,
                      Metadata& metadata) {
  const uint8_t* data = bytes.data();
  const size_t size = bytes.size();
  size_t pos = 0;
  const auto truncated = [&](std::string_view what, uint64_t id, uint64_t need) {
    return make_error("llama2c tokenizer: ", path, ": truncated while reading token ", id, " ",
                      what, ": needs ", need, " bytes at offset ", pos, ", file has ", size,
                      " (the checkpoint's vocab_size is ", vocab_size, ")");
  };
  if (size < 4) {
    return make_error("llama2c tokenizer: ", path,
                      ": truncated while reading max_token_length: ", "needs 4 bytes, file has ",
                      size);
  }
  pos = 4;  // max_token_length: unused
  // Each token takes at least 8 bytes, so the bytes bound what is reserved up front (vocab_size
  // comes from the other file, and a mismatched pair fails below once the bytes run out).
  const size_t reserve = std::min<size_t>(vocab_size, (size - 4) / 8);
  std::vector<Value> tokens, scores, types;
  tokens.reserve(reserve);
  scores.reserve(reserve);
  types.reserve(reserve);
  for (uint32_t id = 0; id < vocab_size; ++id) {
    float score;
    int32_t len;
    if (size - pos < 8) return truncated("score and length", id, 8);
    std::memcpy(&score, data + pos, 4);
    std::memcpy(&len, data + pos + 4, 4);
    pos += 8;
    if (len < 0) {
      return make_error("llama2c tokenizer: ", path, ": token ", id, " has negative length ", len,
                        " at offset ", pos - 4);
    }
    if (static_cast<uint64_t>(len) > size - pos) return truncated("text", id, len);
    std::string text(reinterpret_cast<const char*>(data + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);

    int32_t type = kTokenTypeNormal;
    if (id == kUnknownTokenId) {
      text = "<unk>";
      type = kTokenTypeUnknown;
    } else if (id == kBosTokenId) {
      text = "<s>";
      type = kTokenTypeControl;
    } else if (id == kEosTokenId) {
      text = "</s>";
      type = kTokenTypeControl;
    } else if (text.empty()) {
      type = kTokenTypeControl;
    } else if (looks_like_byte_token(text)) {
      type = kTokenTypeByte;
    }
    tokens.push_back(Value::str(escape_whitespace(text)));
    scores.push_back(Value::f32(score));
    types.push_back(Value::i32(type));
  }
  if (pos != size) {
    return make_error("llama2c tokenizer: ", path, ": ", size - pos,
                      " bytes left after the checkpoint's vocab_size of ", vocab_size,
                      " tokens; tokenizer and checkpoint do not match");
  }
  metadata.set("tokenizer.ggml.tokens", Value::array(ValueType::STRING, std::move(tokens)));
  metadata.set("tokenizer.ggml.scores", Value::array(ValueType::F32, std::move(scores)));
  metadata.set("tokenizer.ggml.token_type", Value::array(ValueType::I32, std::move(types)));
  return ok();
}

// The checkpoint's bytes, `maps` keeping them alive (empty when the caller owns them).
Result<ModelFile> parse_llama2c(std::span<const uint8_t> checkpoint,
                                const std::string& checkpoint_path,
                                std::span<const uint8_t> tokenizer,
                                const std::string& tokenizer_path,
                                std::vector<std::shared_ptr<const MappedFile>> maps) {
  const auto fail = [&](const auto&... args) {
    return make_error("llama2c: ", checkpoint_path, ": ", args...);
  };
  if (checkpoint.size() < kHeaderBytes) {
    return fail("truncated while reading the header: needs ", kHeaderBytes, " bytes, file has ",
                checkpoint.size());
  }
  Config c{};
  std::memcpy(&c, checkpoint.data(), kHeaderBytes);

  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.seq_len <= 0 || c.vocab_size == 0 || c.vocab_size == std::numeric_limits<int32_t>::min()) {
    return fail("header values are not a llama2.c version-0 config (", describe(c),
                "): all must be positive (vocab_size negative for an unshared classifier)");
  }
  if (c.dim % c.n_heads != 0) {
    return fail("header: dim ", c.dim, " is not a multiple of n_heads ", c.n_heads);
  }
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) {
    return fail("header: n_heads ", c.n_heads, " is not a multiple of n_kv_heads ", c.n_kv_heads);
  }
  const bool shared_classifier = c.vocab_size > 0;
  const uint64_t vocab = shared_classifier ? c.vocab_size : -static_cast<int64_t>(c.vocab_size);
  const uint64_t dim = c.dim, hidden = c.hidden_dim, layers = c.n_layers;
  const uint64_t head_size = dim / c.n_heads;
  const uint64_t kv_dim = dim / (c.n_heads / c.n_kv_heads);

  // Element counts of each section, in file order.
  const auto l = [&](std::optional<uint64_t> per_layer) -> std::optional<uint64_t> {
    return per_layer ? mul(layers, *per_layer) : std::nullopt;
  };
  const std::optional<uint64_t> counts[] = {
      mul(vocab, dim),            // 0 token_embedding [vocab, dim]
      l(dim),                     // 1 rms_att [L, dim]
      l(mul(dim, dim)),           // 2 wq [L, dim, dim]
      l(mul(kv_dim, dim)),        // 3 wk [L, kv_dim, dim]
      l(mul(kv_dim, dim)),        // 4 wv [L, kv_dim, dim]
      l(mul(dim, dim)),           // 5 wo [L, dim, dim]
      l(dim),                     // 6 rms_ffn [L, dim]
      l(mul(hidden, dim)),        // 7 w1 [L, hidden, dim]
      l(mul(dim, hidden)),        // 8 w2 [L, dim, hidden]
      l(mul(hidden, dim)),        // 9 w3 [L, hidden, dim]
      dim,                        // 10 rms_final [dim]
      mul(c.seq_len, head_size),  // 11 freq_cis_real + freq_cis_imag (skipped)
      shared_classifier ? uint64_t{0} : mul(vocab, dim),  // 12 wcls [vocab, dim]
  };
  uint64_t offsets[std::size(counts) + 1];  // byte offsets from the end of the header
  offsets[0] = 0;
  for (size_t i = 0; i < std::size(counts); ++i) {
    // Bounding the running total, not each section alone, keeps the sum from wrapping around
    // 2^64 to a small size that a short file would match.
    if (!counts[i] || *counts[i] > (kLimit - offsets[i]) / sizeof(float)) {
      return fail("header values imply an impossibly large model (", describe(c),
                  "): its fp32 weights would take more than 2^62 bytes, file has ",
                  checkpoint.size());
    }
    offsets[i + 1] = offsets[i] + *counts[i] * sizeof(float);
  }
  const uint64_t expected = kHeaderBytes + offsets[std::size(counts)];
  if (expected != checkpoint.size()) {
    return fail("file has ", checkpoint.size(), " bytes, but the header (", describe(c),
                ") implies ", expected, " bytes of fp32 weights",
                checkpoint.size() < expected ? "" : " (file too long)");
  }

  Metadata md(checkpoint_path);
  PARETO_RETURN_IF_ERROR(
      read_tokenizer(tokenizer, tokenizer_path, static_cast<uint32_t>(vocab), md));
  md.set("tokenizer.ggml.model", Value::str("llama"));
  md.set("general.architecture", Value::str("llama"));
  md.set("general.name", Value::str("llama"));
  md.set("tokenizer.ggml.unknown_token_id", Value::u32(kUnknownTokenId));
  md.set("tokenizer.ggml.bos_token_id", Value::u32(kBosTokenId));
  md.set("tokenizer.ggml.eos_token_id", Value::u32(kEosTokenId));
  // The converter writes -1 as U32 for "none"; the misspelling is GGUF's key name.
  md.set("tokenizer.ggml.seperator_token_id", Value::u32(0xffffffffu));
  md.set("tokenizer.ggml.padding_token_id", Value::u32(0xffffffffu));
  md.set("llama.context_length", Value::u32(static_cast<uint32_t>(c.seq_len)));
  md.set("llama.embedding_length", Value::u32(static_cast<uint32_t>(dim)));
  md.set("llama.feed_forward_length", Value::u32(static_cast<uint32_t>(hidden)));
  md.set("llama.attention.head_count", Value::u32(static_cast<uint32_t>(c.n_heads)));
  md.set("llama.attention.head_count_kv", Value::u32(static_cast<uint32_t>(c.n_kv_heads)));
  md.set("llama.block_count", Value::u32(static_cast<uint32_t>(layers)));
  // The converter writes min(64, head_size); llama2.c rotates the whole head, so head_size is
  // what inference needs (the two agree for every head_size <= 64).
  md.set("llama.rope.dimension_count", Value::u32(static_cast<uint32_t>(head_size)));
  md.set("llama.attention.layer_norm_rms_epsilon", Value::f32(1e-5f));

  const uint8_t* weights = checkpoint.data() + kHeaderBytes;
  std::vector<TensorInfo> tensors;
  tensors.reserve(3 + 9 * layers);
  // `section` indexes `counts`; `index` selects one layer's slice of a per-layer section.
  const auto add = [&](std::string name, std::vector<int64_t> shape, size_t section,
                       uint64_t index) {
    TensorInfo t;
    t.name = std::move(name);
    t.type = TensorType::F32;
    t.shape = std::move(shape);
    t.nbytes = static_cast<uint64_t>(t.n_elements()) * sizeof(float);
    t.offset = offsets[section] + index * t.nbytes;
    t.data = weights + t.offset;
    tensors.push_back(std::move(t));
  };
  const auto d = static_cast<int64_t>(dim), h = static_cast<int64_t>(hidden),
             kv = static_cast<int64_t>(kv_dim), v = static_cast<int64_t>(vocab);
  add("token_embd.weight", {d, v}, 0, 0);
  add("output_norm.weight", {d}, 10, 0);
  // A shared classifier is a second view of the embedding's bytes, not a copy.
  add("output.weight", {d, v}, shared_classifier ? 0 : 12, 0);
  for (uint64_t i = 0; i < layers; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".";
    add(blk + "attn_q.weight", {d, d}, 2, i);
    add(blk + "attn_k.weight", {d, kv}, 3, i);
    add(blk + "attn_v.weight", {d, kv}, 4, i);
    add(blk + "attn_output.weight", {d, d}, 5, i);
    add(blk + "attn_norm.weight", {d}, 1, i);
    add(blk + "ffn_gate.weight", {d, h}, 7, i);
    add(blk + "ffn_down.weight", {h, d}, 8, i);
    add(blk + "ffn_up.weight", {d, h}, 9, i);
    add(blk + "ffn_norm.weight", {d}, 6, i);
  }
  return ModelFile(checkpoint_path, "llama2c", std::move(md), std::move(tensors), std::move(maps));
}

}  // namespace

Result<ModelFile> read_llama2c_from_memory(std::span<const uint8_t> checkpoint,
                                           const std::string& checkpoint_name,
                                           std::span<const uint8_t> tokenizer,
                                           const std::string& tokenizer_name) {
  return parse_llama2c(checkpoint, checkpoint_name, tokenizer, tokenizer_name, {});
}

Result<ModelFile> read_llama2c(const std::string& checkpoint_path,
                               const std::string& tokenizer_path) {
  auto mapped = MappedFile::open(checkpoint_path);
  if (!mapped) return make_error("llama2c: ", mapped.error().message);
  auto map = std::make_shared<const MappedFile>(std::move(*mapped));
  auto tokenizer = MappedFile::open(tokenizer_path);
  if (!tokenizer) return make_error("llama2c tokenizer: ", tokenizer.error().message);
  // The tokenizer's bytes are copied into the metadata; its mapping closes on return.
  const std::span<const uint8_t> checkpoint(map->data(), map->size());
  return parse_llama2c(checkpoint, checkpoint_path,
                       std::span<const uint8_t>(tokenizer->data(), tokenizer->size()),
                       tokenizer_path, {map});
}

}  // namespace pareto::formats
