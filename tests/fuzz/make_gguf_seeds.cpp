// Writes a seed corpus for fuzz_gguf into the directory given as argv[1]: small valid GGUF files
// covering every metadata value type, nested arrays, several tensor types and a custom alignment.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"

using pareto::TensorType;
using pareto::formats::GgufWriter;
using pareto::formats::Value;
using pareto::formats::ValueType;

namespace {

bool write(const GgufWriter& w, const std::filesystem::path& path) {
  auto r = w.write(path.string());
  if (!r) std::fprintf(stderr, "make_gguf_seeds: %s\n", r.error().message.c_str());
  return static_cast<bool>(r);
}

std::vector<uint8_t> bytes(size_t n) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 37 + 11);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_gguf_seeds OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
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

  return ok ? 0 : 1;
}
