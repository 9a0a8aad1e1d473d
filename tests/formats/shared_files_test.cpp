// Reads every GGUF file in the shared test data and checks what the files are known to hold.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/model_file.h"
#include "test_util.h"

namespace pareto::formats {
namespace {

TEST(GgufReader, ReadsStories260K) {
  const std::string path = test::shared_path("models/stories260K/stories260K.gguf");
  auto file = read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->format(), "gguf");
  EXPECT_EQ(file->gguf_version(), 3u);
  const Metadata& md = file->metadata();
  // Values from the README's description of the model (dim 64, hidden 172, 5 layers, 8 heads,
  // 4 KV heads, vocab 512, seq_len 512).
  EXPECT_EQ(md.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(md.get_uint("llama.embedding_length").value(), 64u);
  EXPECT_EQ(md.get_uint("llama.feed_forward_length").value(), 172u);
  EXPECT_EQ(md.get_uint("llama.block_count").value(), 5u);
  EXPECT_EQ(md.get_uint("llama.attention.head_count").value(), 8u);
  EXPECT_EQ(md.get_uint("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ(md.get_uint("llama.context_length").value(), 512u);
  EXPECT_EQ(md.get_string_array("tokenizer.ggml.tokens").value().size(), 512u);
  EXPECT_EQ(md.get_float_array("tokenizer.ggml.scores").value().size(), 512u);
  EXPECT_EQ(md.get_int_array("tokenizer.ggml.token_type").value().size(), 512u);
  EXPECT_FLOAT_EQ(
      static_cast<float>(md.get_float("llama.attention.layer_norm_rms_epsilon").value()), 1e-5f);

  // token_embd + output + output_norm + 9 per layer.
  EXPECT_EQ(file->tensors().size(), 3u + 9u * 5u);
  const TensorInfo* embd = file->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, TensorType::F32);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd->nbytes, 64u * 512u * 4u);
  EXPECT_EQ(embd->cols(), 64);
  EXPECT_EQ(embd->rows(), 512);
  const TensorInfo* wk = file->find_tensor("blk.4.attn_k.weight");
  ASSERT_NE(wk, nullptr);
  EXPECT_EQ(wk->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(file->find_tensor("blk.5.attn_k.weight"), nullptr);
  uint64_t total = 0;
  for (const auto& t : file->tensors()) {
    total += t.nbytes;
    ASSERT_NE(t.data, nullptr) << t.name;
  }
  EXPECT_EQ(file->data_bytes(), total);
}

TEST(GgufReader, ReadsQuantizedStories260K) {
  for (const char* name : {"stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"}) {
    const std::string path = test::shared_path(std::string("models/stories260K/") + name);
    auto file = read_gguf(path);
    ASSERT_TRUE(file) << file.error().message;
    EXPECT_EQ(file->tensors().size(), 48u) << name;
    const TensorInfo* embd = file->find_tensor("token_embd.weight");
    ASSERT_NE(embd, nullptr);
    EXPECT_EQ(embd->shape, (std::vector<int64_t>{64, 512}));
    // Every tensor's byte size follows from its type's block layout.
    for (const auto& t : file->tensors()) {
      EXPECT_EQ(static_cast<int64_t>(t.nbytes), t.rows() * row_bytes(t.type, t.cols())) << t.name;
    }
  }
}

TEST(GgufReader, ReadsEverySharedGgufFile) {
  const std::vector<std::string> files = {
      "models/stories260K/stories260K.gguf",
      "models/stories260K/stories260K-Q8_0.gguf",
      "models/stories260K/stories260K-Q4_0.gguf",
      "models/pycode/pycode7m.gguf",
      "models/pycode/pycode1m.gguf",
      "models/pycode/pycode7m-1k.gguf",
      "vocab/ggml-vocab-llama-spm.gguf",
      "vocab/ggml-vocab-llama-bpe.gguf",
      "vocab/ggml-vocab-qwen2.gguf",
      "vocab/ggml-vocab-gpt-2.gguf",
      "vocab/ggml-vocab-phi-3.gguf",
      "vocab/ggml-vocab-deepseek-coder.gguf",
      "vocab/ggml-vocab-starcoder.gguf",
  };
  for (const auto& rel : files) {
    const std::string path = test::shared_path(rel);
    auto file = read_gguf(path);
    ASSERT_TRUE(file) << file.error().message;
    const Metadata& md = file->metadata();
    auto tokens = md.get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens) << tokens.error().message;
    EXPECT_GT(tokens->size(), 0u) << rel;
    EXPECT_TRUE(md.get_string("tokenizer.ggml.model")) << rel;
    EXPECT_TRUE(md.get_string("general.architecture")) << rel;
  }
}

TEST(GgufReader, PycodeModelsHaveTheirReadmeShapes) {
  struct Expect {
    const char* rel;
    uint64_t dim, layers, heads, ffn, ctx;
  };
  // From models/pycode/README.md.
  for (const Expect& e : {Expect{"models/pycode/pycode7m.gguf", 288, 6, 6, 768, 256},
                          Expect{"models/pycode/pycode1m.gguf", 128, 3, 4, 384, 256},
                          Expect{"models/pycode/pycode7m-1k.gguf", 288, 6, 6, 768, 1024}}) {
    auto file = read_gguf(test::shared_path(e.rel));
    ASSERT_TRUE(file) << file.error().message;
    const Metadata& md = file->metadata();
    EXPECT_EQ(md.get_uint("llama.embedding_length").value(), e.dim) << e.rel;
    EXPECT_EQ(md.get_uint("llama.block_count").value(), e.layers) << e.rel;
    EXPECT_EQ(md.get_uint("llama.attention.head_count").value(), e.heads) << e.rel;
    EXPECT_EQ(md.get_uint("llama.feed_forward_length").value(), e.ffn) << e.rel;
    EXPECT_EQ(md.get_uint("llama.context_length").value(), e.ctx) << e.rel;
    EXPECT_EQ(md.get_string_array("tokenizer.ggml.tokens").value().size(), 4096u) << e.rel;
  }
}

}  // namespace
}  // namespace pareto::formats
