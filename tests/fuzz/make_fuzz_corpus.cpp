// Writes the seed corpora kept in tests/fuzz/corpus (run once, its output committed; see
// docs/fuzzing.md): OUT_DIR/gguf: small valid GGUF files covering every metadata value type,
// nested arrays, several tensor types, a custom alignment, both vocabulary kinds (SentencePiece
// and byte-level BPE with merges), and near-valid variants of each (other versions, off-by-one
// counts, truncated, one byte long: see write()); OUT_DIR/llama2c: tiny valid
// llama2.c checkpoints (shared and separate classifier) with their tokenizer.bin, in the input
// format of fuzz_llama2c, and near-valid variants (weights one float short or long, bad token
// lengths, a bad header, header only, no tokenizer).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"

using pareto::TensorType;
using pareto::formats::GgufWriter;
using pareto::formats::Value;
using pareto::formats::ValueType;

namespace {

std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// The file itself, then near-valid variants: version 2, an unsupported version 4, one tensor and
// one metadata key more than the file holds (off-by-one counts), one trailing byte, and cut at 24
// bytes (the header), at half, and one byte short.
bool write(const GgufWriter& w, const std::filesystem::path& path) {
  auto r = w.write(path.string());
  if (!r) {
    std::fprintf(stderr, "make_fuzz_corpus: %s\n", r.error().message.c_str());
    return false;
  }
  const std::vector<uint8_t> bytes = read_bytes(path);
  const std::string stem = path.stem().string();
  std::vector<uint8_t> v2 = bytes;
  v2[4] = 2;  // version, little-endian uint32 after the magic
  write_bytes(path.parent_path() / (stem + "-v2.gguf"), v2);
  std::vector<uint8_t> v4 = bytes;
  v4[4] = 4;
  write_bytes(path.parent_path() / (stem + "-v4.gguf"), v4);
  // Header: magic, u32 version, u64 tensor count at 8, u64 metadata count at 16.
  std::vector<uint8_t> more_tensors = bytes;
  ++more_tensors[8];
  write_bytes(path.parent_path() / (stem + "-tensors+1.gguf"), more_tensors);
  std::vector<uint8_t> more_keys = bytes;
  ++more_keys[16];
  write_bytes(path.parent_path() / (stem + "-keys+1.gguf"), more_keys);
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  write_bytes(path.parent_path() / (stem + "-long.gguf"), longer);
  for (const size_t cut : {size_t{24}, bytes.size() / 2, bytes.size() - 1}) {
    write_bytes(path.parent_path() / (stem + "-cut" + std::to_string(cut) + ".gguf"),
                std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
  }
  return true;
}

void append_i32(std::vector<uint8_t>& out, int32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

void append_f32(std::vector<uint8_t>& out, float v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

// A llama2.c checkpoint (header dim, hidden, layers, heads, kv heads, vocab, seq_len; fp32
// weights) and a tokenizer.bin of |vocab| tokens, joined in fuzz_llama2c's input format.
std::vector<uint8_t> llama2c_input(int32_t vocab, int32_t weights_delta, int32_t token_len) {
  const int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, seq_len = 4;
  std::vector<uint8_t> ckpt;
  for (const int32_t v : {dim, hidden, layers, heads, kv_heads, vocab, seq_len}) {
    append_i32(ckpt, v);
  }
  const int64_t n_vocab = vocab < 0 ? -int64_t{vocab} : vocab;
  const int64_t head = dim / heads, kv_dim = dim / (heads / kv_heads);
  const int64_t n =
      n_vocab * dim +
      layers * (dim + dim * dim + 2 * kv_dim * dim + dim * dim + dim + 3 * hidden * dim) + dim +
      seq_len * head + (vocab < 0 ? n_vocab * dim : 0) + weights_delta;
  for (int64_t i = 0; i < n; ++i) append_f32(ckpt, static_cast<float>(i % 7) * 0.125f - 0.25f);
  std::vector<uint8_t> tok;
  append_i32(tok, 4);                     // max_token_length
  const std::string sp = "\xe2\x96\x81";  // U+2581, SentencePiece's space
  const std::string texts[] = {"<unk>", "<s>", "</s>", "<0x0A>", sp + "a", "b", "ab", ""};
  for (int64_t id = 0; id < n_vocab; ++id) {
    const std::string& t = texts[id % 8];
    append_f32(tok, -static_cast<float>(id));
    append_i32(tok, id == 4 ? token_len : static_cast<int32_t>(t.size()));
    tok.insert(tok.end(), t.begin(), t.end());
  }
  std::vector<uint8_t> out;
  append_i32(out, static_cast<int32_t>(ckpt.size()));
  out.insert(out.end(), ckpt.begin(), ckpt.end());
  out.insert(out.end(), tok.begin(), tok.end());
  return out;
}

std::vector<uint8_t> bytes(size_t n) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 37 + 11);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_corpus OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  const std::filesystem::path dir = out / "gguf";
  std::filesystem::create_directories(dir);
  std::filesystem::create_directories(out / "llama2c");
  bool ok = true;

  GgufWriter values;
  values.set("u8", Value::u8(1));
  values.set("i8", {ValueType::I8, int64_t{-2}});
  values.set("u16", {ValueType::U16, uint64_t{3}});
  values.set("i16", {ValueType::I16, int64_t{-4}});
  values.set("u32", Value::u32(5));
  values.set("i32", Value::i32(-6));
  values.set("f32", Value::f32(7.5f));
  values.set("bool", Value::boolean(true));
  values.set("str", Value::str("eight"));
  values.set("u64", Value::u64(9));
  values.set("i64", Value::i64(-10));
  values.set("f64", Value::f64(11.25));
  values.set("strs", Value::str_array({"a", "bc", ""}));
  values.set("nested", Value::array(ValueType::ARRAY, {Value::i32_array({1, 2}),
                                                       Value::array(ValueType::STRING, {})}));
  ok &= write(values, dir / "values.gguf");

  GgufWriter vocab;
  vocab.set("general.architecture", Value::str("llama"));
  vocab.set("tokenizer.ggml.model", Value::str("llama"));
  vocab.set("tokenizer.ggml.tokens", Value::str_array({"<unk>", "<s>", "</s>",
                                                       "\xe2\x96\x81"
                                                       "a"}));
  vocab.set("tokenizer.ggml.scores", Value::f32_array({0, 0, 0, -1}));
  vocab.set("tokenizer.ggml.token_type", Value::i32_array({2, 3, 3, 1}));
  vocab.set("llama.block_count", Value::u32(1));
  ok &= write(vocab, dir / "vocab.gguf");

  GgufWriter bpe;
  bpe.set("general.architecture", Value::str("qwen2"));
  bpe.set("tokenizer.ggml.model", Value::str("gpt2"));
  bpe.set("tokenizer.ggml.pre", Value::str("qwen2"));
  const std::string g = "\xc4\xa0";  // U+0120, byte-level BPE's space
  bpe.set("tokenizer.ggml.tokens", Value::str_array({"a", "b", "ab", g, g + "a", "<|endoftext|>"}));
  bpe.set("tokenizer.ggml.token_type", Value::i32_array({1, 1, 1, 1, 1, 3}));
  bpe.set("tokenizer.ggml.merges", Value::str_array({"a b", g + " a"}));
  bpe.set("tokenizer.ggml.eos_token_id", Value::u32(5));
  ok &= write(bpe, dir / "vocab-bpe.gguf");

  GgufWriter tensors;
  tensors.set("general.architecture", Value::str("llama"));
  ok &= static_cast<bool>(tensors.add_tensor("f32", TensorType::F32, {4, 2}, bytes(32)));
  ok &= static_cast<bool>(tensors.add_tensor("f16", TensorType::F16, {4}, bytes(8)));
  ok &= static_cast<bool>(tensors.add_tensor("q8_0", TensorType::Q8_0, {32, 2}, bytes(68)));
  ok &= static_cast<bool>(tensors.add_tensor("q4_0", TensorType::Q4_0, {32}, bytes(18)));
  ok &= static_cast<bool>(tensors.add_tensor("q4_k", TensorType::Q4_K, {256}, bytes(144)));
  ok &= static_cast<bool>(tensors.add_tensor("i8", TensorType::I8, {3, 1, 1, 2}, bytes(6)));
  ok &= write(tensors, dir / "tensors.gguf");

  GgufWriter aligned;
  aligned.set("general.alignment", Value::u32(64));
  ok &= static_cast<bool>(aligned.add_tensor("a", TensorType::F32, {3}, bytes(12)));
  ok &= static_cast<bool>(aligned.add_tensor("b", TensorType::BF16, {5}, bytes(10)));
  ok &= write(aligned, dir / "aligned.gguf");

  // llama2.c: valid (shared classifier, separate classifier), then one float short, one extra,
  // a negative token length and a token length past the end.
  write_bytes(out / "llama2c" / "shared.bin", llama2c_input(8, 0, 4));
  write_bytes(out / "llama2c" / "separate.bin", llama2c_input(-8, 0, 4));
  write_bytes(out / "llama2c" / "short.bin", llama2c_input(8, -1, 4));
  write_bytes(out / "llama2c" / "long.bin", llama2c_input(8, 1, 4));
  write_bytes(out / "llama2c" / "negative-token.bin", llama2c_input(8, 0, -1));
  write_bytes(out / "llama2c" / "token-past-end.bin", llama2c_input(8, 0, 1000));
  // The header fields sit after fuzz_llama2c's 4-byte split word: n_kv_heads (field 4) of 3 does
  // not divide n_heads 2; the header alone leaves no weights; an empty tokenizer has no tokens.
  std::vector<uint8_t> bad_heads = llama2c_input(8, 0, 4);
  bad_heads[4 + 4 * 4] = 3;
  write_bytes(out / "llama2c" / "bad-kv-heads.bin", bad_heads);
  const std::vector<uint8_t> valid = llama2c_input(8, 0, 4);
  std::vector<uint8_t> header_only(valid.begin(), valid.begin() + 4 + 28);
  header_only[0] = 28;  // the split: all 28 bytes are the checkpoint
  header_only[1] = header_only[2] = header_only[3] = 0;
  write_bytes(out / "llama2c" / "header-only.bin", header_only);
  uint32_t ckpt_size;
  std::memcpy(&ckpt_size, valid.data(), 4);
  write_bytes(out / "llama2c" / "no-tokenizer.bin",
              std::vector<uint8_t>(valid.begin(), valid.begin() + 4 + ckpt_size));
  return ok ? 0 : 1;
}
