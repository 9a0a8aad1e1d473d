// read_llama2c against the GGUF files llama.cpp's convert-llama2c-to-ggml made from the same
// checkpoints, plus malformed checkpoints and tokenizers.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "formats/model_file.h"
#include "test_util.h"

namespace pareto::formats {
namespace llama2c_reader_test {
namespace {

// Every tensor of `gguf` exists in `l2c` with the same shape, type and bytes, and every
// tokenizer.* / llama.* / general.* key has the same type and value.
void expect_same_model(const ModelFile& l2c, const ModelFile& gguf) {
  ASSERT_EQ(l2c.tensors().size(), gguf.tensors().size());
  for (size_t i = 0; i < gguf.tensors().size(); ++i) {
    const TensorInfo& want = gguf.tensors()[i];
    const TensorInfo& got = l2c.tensors()[i];
    EXPECT_EQ(got.name, want.name) << "tensor order differs at #" << i;
    const TensorInfo* t = l2c.find_tensor(want.name);
    ASSERT_NE(t, nullptr) << want.name;
    EXPECT_EQ(t->type, want.type) << want.name;
    EXPECT_EQ(t->shape, want.shape) << want.name;
    ASSERT_EQ(t->nbytes, want.nbytes) << want.name;
    EXPECT_EQ(std::memcmp(t->data, want.data, want.nbytes), 0) << want.name << " bytes differ";
  }
  const auto& want_entries = gguf.metadata().entries();
  const auto& got_entries = l2c.metadata().entries();
  ASSERT_EQ(got_entries.size(), want_entries.size());
  for (size_t i = 0; i < want_entries.size(); ++i) {
    const auto& [key, want] = want_entries[i];
    EXPECT_EQ(got_entries[i].first, key) << "key order differs at #" << i;
    const Value* got = l2c.metadata().find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_EQ(got->type, want.type) << key;
    EXPECT_TRUE(*got == want) << key << " values differ";
  }
}

TEST(Llama2cReader, Stories260KMatchesConvertedGguf) {
  auto l2c = read_llama2c(test::shared_path("models/stories260K/stories260K.bin"),
                          test::shared_path("models/stories260K/tok512.bin"));
  ASSERT_TRUE(l2c) << l2c.error().message;
  auto gguf = read_gguf(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf) << gguf.error().message;
  EXPECT_EQ(l2c->format(), "llama2c");
  expect_same_model(*l2c, *gguf);
  // The shared classifier is a view of the embedding's bytes, not a copy.
  EXPECT_EQ(l2c->find_tensor("output.weight")->data, l2c->find_tensor("token_embd.weight")->data);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The in-memory entry point (the fuzzer's) gives what the file reader gives, with its views
// inside the caller's bytes, and names the given names in errors.
TEST(Llama2cReader, FromMemoryMatchesTheFileReader) {
  const std::vector<uint8_t> ckpt =
      file_bytes(test::shared_path("models/stories260K/stories260K.bin"));
  const std::vector<uint8_t> tok = file_bytes(test::shared_path("models/stories260K/tok512.bin"));
  auto mem = read_llama2c_from_memory(ckpt, "ckpt", tok, "tok");
  ASSERT_TRUE(mem) << mem.error().message;
  auto gguf = read_gguf(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf) << gguf.error().message;
  expect_same_model(*mem, *gguf);
  const uint8_t* data = mem->find_tensor("token_embd.weight")->data;
  EXPECT_TRUE(data >= ckpt.data() && data < ckpt.data() + ckpt.size());

  const std::span<const uint8_t> all(ckpt);
  auto cut = read_llama2c_from_memory(all.first(ckpt.size() - 4), "cut.bin", tok, "tok");
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("cut.bin"), std::string::npos) << cut.error().message;
  auto no_tok =
      read_llama2c_from_memory(ckpt, "ckpt", std::span<const uint8_t>(tok).first(3), "short.tok");
  ASSERT_FALSE(no_tok);
  EXPECT_NE(no_tok.error().message.find("short.tok"), std::string::npos) << no_tok.error().message;
}

TEST(Llama2cReader, Pycode7mMatchesConvertedGguf) {
  auto l2c = read_llama2c(test::shared_path("models/pycode/pycode7m.bin"),
                          test::shared_path("models/pycode/pycode4k.tok.bin"));
  ASSERT_TRUE(l2c) << l2c.error().message;
  auto gguf = read_gguf(test::shared_path("models/pycode/pycode7m.gguf"));
  ASSERT_TRUE(gguf) << gguf.error().message;
  expect_same_model(*l2c, *gguf);
}

TEST(Llama2cReader, Pycode1mMatchesConvertedGguf) {
  auto l2c = read_llama2c(test::shared_path("models/pycode/pycode1m.bin"),
                          test::shared_path("models/pycode/pycode4k.tok.bin"));
  ASSERT_TRUE(l2c) << l2c.error().message;
  auto gguf = read_gguf(test::shared_path("models/pycode/pycode1m.gguf"));
  ASSERT_TRUE(gguf) << gguf.error().message;
  expect_same_model(*l2c, *gguf);
}

TEST(OpenModelFile, DispatchesOnMagic) {
  auto gguf = open_model_file(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf) << gguf.error().message;
  EXPECT_EQ(gguf->format(), "gguf");
  auto l2c = open_model_file(test::shared_path("models/stories260K/stories260K.bin"),
                             test::shared_path("models/stories260K/tok512.bin"));
  ASSERT_TRUE(l2c) << l2c.error().message;
  EXPECT_EQ(l2c->format(), "llama2c");
  const std::string bin = test::shared_path("models/stories260K/stories260K.bin");
  auto no_tok = open_model_file(bin);
  ASSERT_FALSE(no_tok);
  EXPECT_NE(no_tok.error().message.find(bin), std::string::npos) << no_tok.error().message;
  EXPECT_NE(no_tok.error().message.find("tokenizer"), std::string::npos) << no_tok.error().message;
  auto missing = open_model_file("/nonexistent/model.gguf");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/model.gguf"), std::string::npos);
}

// ---- malformed inputs, derived from the real stories260K files ----

std::vector<char> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string write_file(const std::filesystem::path& dir, const std::string& name,
                       const std::vector<char>& bytes) {
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

void expect_error(const Result<ModelFile>& r, const std::string& path,
                  const std::vector<std::string>& parts) {
  ASSERT_FALSE(r) << "expected an error for " << path;
  const std::string& msg = r.error().message;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  for (const auto& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(Llama2cReader, RejectsTruncatedCheckpoint) {
  const auto dir = test::temp_dir("llama2c_truncated");
  const std::string tok = test::shared_path("models/stories260K/tok512.bin");
  auto bytes = read_all(test::shared_path("models/stories260K/stories260K.bin"));
  const std::string full_size = std::to_string(bytes.size());
  bytes.resize(bytes.size() - 4);
  const std::string path = write_file(dir, "short.bin", bytes);
  // The message names the size the header implies and the size found.
  expect_error(read_llama2c(path, tok), path, {full_size, std::to_string(bytes.size())});

  bytes.resize(10);
  const std::string tiny = write_file(dir, "tiny.bin", bytes);
  expect_error(read_llama2c(tiny, tok), tiny, {"header", "10"});
}

TEST(Llama2cReader, RejectsTrailingBytes) {
  const auto dir = test::temp_dir("llama2c_long");
  auto bytes = read_all(test::shared_path("models/stories260K/stories260K.bin"));
  bytes.resize(bytes.size() + 4, 0);
  const std::string path = write_file(dir, "long.bin", bytes);
  expect_error(read_llama2c(path, test::shared_path("models/stories260K/tok512.bin")), path,
               {"too long"});
}

TEST(Llama2cReader, RejectsNonsenseHeader) {
  const auto dir = test::temp_dir("llama2c_header");
  const std::string tok = test::shared_path("models/stories260K/tok512.bin");
  const auto original = read_all(test::shared_path("models/stories260K/stories260K.bin"));
  struct Case {
    int field;  // index of the int32 in the header
    int32_t value;
    const char* expect;
  };
  for (const Case& c :
       {Case{0, 0, "positive"}, Case{3, -8, "positive"}, Case{3, 7, "not a multiple of n_heads"},
        Case{4, 3, "not a multiple of n_kv_heads"},
        Case{1, 0x7fffffff, "bytes"},  // huge hidden_dim: size mismatch
        Case{0, 0x7fffffff, "n_heads"}}) {
    auto bytes = original;
    std::memcpy(bytes.data() + 4 * c.field, &c.value, 4);
    const std::string path = write_file(dir, "bad.bin", bytes);
    expect_error(read_llama2c(path, tok), path, {c.expect});
  }
}

TEST(Llama2cReader, RejectsMismatchedTokenizer) {
  const auto dir = test::temp_dir("llama2c_tokenizer");
  const std::string bin = test::shared_path("models/stories260K/stories260K.bin");
  // 4096 tokens where the checkpoint declares 512: bytes are left over.
  const std::string big = test::shared_path("models/pycode/pycode4k.tok.bin");
  auto r = read_llama2c(bin, big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(big), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("512"), std::string::npos) << r.error().message;

  auto tok = read_all(test::shared_path("models/stories260K/tok512.bin"));
  tok.resize(tok.size() / 2);
  const std::string short_tok = write_file(dir, "short_tok.bin", tok);
  auto r2 = read_llama2c(bin, short_tok);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find(short_tok), std::string::npos) << r2.error().message;
  EXPECT_NE(r2.error().message.find("truncated"), std::string::npos) << r2.error().message;

  auto r3 = read_llama2c(bin, "/nonexistent/tok.bin");
  ASSERT_FALSE(r3);
  EXPECT_NE(r3.error().message.find("/nonexistent/tok.bin"), std::string::npos);
}

// Regression (found reviewing for the fuzz campaign, tests/fuzz/corpus/llama2c/
// regression-size-wraps.bin): dim = hidden_dim = 2^30, vocab_size 1 and seq_len 2^30 - 4 make
// the weights 2^65 bytes, which a 64-bit sum wrapped to 0, so a 28-byte file passed the size
// check and its tensor views pointed gigabytes past the end of the bytes.
TEST(Llama2cReader, RejectsSizesThatWrapAround) {
  const int32_t header[7] = {1 << 30, 1 << 30, 1, 1, 1, 1, (1 << 30) - 4};
  std::vector<uint8_t> ckpt(sizeof(header));
  std::memcpy(ckpt.data(), header, sizeof(header));
  // max_token_length, then one token: score 0, length 0.
  const std::vector<uint8_t> tok(12, 0);
  auto r = read_llama2c_from_memory(ckpt, "wrap.bin", tok, "wrap.tok.bin");
  ASSERT_FALSE(r) << "a 28-byte checkpoint cannot hold 2^30 x 2^30 weights";
  for (const char* part :
       {"wrap.bin", "impossibly large", "dim 1073741824", "2^62 bytes", "file has 28"}) {
    EXPECT_NE(r.error().message.find(part), std::string::npos)
        << "'" << part << "' not in: " << r.error().message;
  }
}

}  // namespace
}  // namespace llama2c_reader_test
}  // namespace pareto::formats
