// GgufWriter -> read_gguf round trips: every metadata value type (nested arrays included), every
// tensor type with a block layout, custom alignment, and the writer's own validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "test_util.h"

namespace pareto::formats {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::vector<char> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One value of every type, extremes included, and arrays of each, nested and empty.
std::vector<std::pair<std::string, Value>> every_value_type() {
  std::vector<std::pair<std::string, Value>> kv = {
      {"t.u8", Value::u8(255)},
      {"t.i8", {ValueType::I8, int64_t{-128}}},
      {"t.u16", {ValueType::U16, uint64_t{65535}}},
      {"t.i16", {ValueType::I16, int64_t{-32768}}},
      {"t.u32", Value::u32(0xffffffffu)},
      {"t.i32", Value::i32(std::numeric_limits<int32_t>::min())},
      {"t.f32", Value::f32(-1.5e-7f)},
      {"t.bool_true", Value::boolean(true)},
      {"t.bool_false", Value::boolean(false)},
      {"t.string", Value::str("héllo \n world")},
      {"t.empty_string", Value::str("")},
      {"t.u64", Value::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", Value::i64(std::numeric_limits<int64_t>::min())},
      {"t.f64", Value::f64(3.141592653589793)},
      {"t.arr_u8", Value::array(ValueType::U8, {Value::u8(0), Value::u8(7)})},
      {"t.arr_i8", Value::array(ValueType::I8, {{ValueType::I8, int64_t{-1}}})},
      {"t.arr_u16", Value::array(ValueType::U16, {{ValueType::U16, uint64_t{9}}})},
      {"t.arr_i16", Value::array(ValueType::I16, {{ValueType::I16, int64_t{-9}}})},
      {"t.arr_u32", Value::array(ValueType::U32, {Value::u32(1), Value::u32(2)})},
      {"t.arr_i32", Value::i32_array({-1, 0, 1})},
      {"t.arr_f32", Value::f32_array({0.5f, -0.25f})},
      {"t.arr_bool", Value::array(ValueType::BOOL, {Value::boolean(true), Value::boolean(false)})},
      {"t.arr_string", Value::str_array({"a", "", "ccc"})},
      {"t.arr_u64", Value::array(ValueType::U64, {Value::u64(1ull << 40)})},
      {"t.arr_i64", Value::array(ValueType::I64, {Value::i64(-(1ll << 40))})},
      {"t.arr_f64", Value::array(ValueType::F64, {Value::f64(1e300)})},
      {"t.arr_empty", Value::array(ValueType::STRING, {})},
      {"t.arr_nested",
       Value::array(ValueType::ARRAY, {Value::str_array({"x", "y"}), Value::i32_array({3}),
                                       Value::array(ValueType::U8, {})})},
      {"t.arr_nested2",
       Value::array(ValueType::ARRAY,
                    {Value::array(ValueType::ARRAY, {Value::f32_array({1.0f, 2.0f})})})},
  };
  return kv;
}

TEST(GgufWriter, RoundTripsEveryValueType) {
  const auto dir = test::temp_dir("gguf_writer_values");
  const std::string path = (dir / "values.gguf").string();
  GgufWriter w;
  const auto kv = every_value_type();
  for (const auto& [k, v] : kv) w.set(k, v);
  w.set("t.u8", Value::u8(254));  // replaces, keeping the original position
  ASSERT_TRUE(w.write(path));
  auto file = read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->gguf_version(), 3u);
  const auto& entries = file->metadata().entries();
  ASSERT_EQ(entries.size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(entries[i].first, kv[i].first);
    const Value want = i == 0 ? Value::u8(254) : kv[i].second;
    EXPECT_TRUE(entries[i].second == want) << kv[i].first;
  }
  // No general.alignment unless it was set.
  EXPECT_FALSE(file->metadata().contains("general.alignment"));
  EXPECT_TRUE(file->tensors().empty());
}

TEST(GgufWriter, RoundTripsEveryTensorType) {
  const auto dir = test::temp_dir("gguf_writer_tensors");
  const std::string path = (dir / "tensors.gguf").string();
  GgufWriter w;
  struct Written {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::vector<Written> written;
  uint32_t seed = 1;
  for (uint32_t id = 0; id < 64; ++id) {
    const auto tr = tensor_type_traits(id);
    if (!tr) continue;
    const auto type = static_cast<TensorType>(id);
    // Two blocks per row, three rows; plus a 1-D and a 4-D tensor of the same type.
    for (const auto& shape :
         {std::vector<int64_t>{2 * tr->block_size, 3}, std::vector<int64_t>{tr->block_size},
          std::vector<int64_t>{tr->block_size, 2, 1, 3}}) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      Written t{std::string(tr->name) + "." + std::to_string(shape.size()), type, shape,
                random_bytes(static_cast<size_t>(n / tr->block_size * tr->block_bytes), seed++)};
      ASSERT_TRUE(w.add_tensor(t.name, t.type, t.shape, t.data));
      written.push_back(std::move(t));
    }
  }
  ASSERT_EQ(written.size(), 60u);  // 20 types in tensor_type.h
  ASSERT_TRUE(w.write(path));
  auto file = read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  ASSERT_EQ(file->tensors().size(), written.size());
  const uint8_t* base = file->tensors().front().data;
  for (size_t i = 0; i < written.size(); ++i) {
    const TensorInfo& t = file->tensors()[i];
    EXPECT_EQ(t.name, written[i].name);
    EXPECT_EQ(t.type, written[i].type) << t.name;
    EXPECT_EQ(t.shape, written[i].shape) << t.name;
    ASSERT_EQ(t.nbytes, written[i].data.size()) << t.name;
    EXPECT_EQ(std::memcmp(t.data, written[i].data.data(), t.nbytes), 0) << t.name;
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(static_cast<uint64_t>(t.data - base), t.offset) << t.name;
  }
}

TEST(GgufWriter, HonorsCustomAlignment) {
  const auto dir = test::temp_dir("gguf_writer_alignment");
  const std::string path = (dir / "aligned.gguf").string();
  GgufWriter w;
  w.set("general.alignment", Value::u32(256));
  ASSERT_TRUE(w.add_tensor("a", TensorType::F32, {3}, random_bytes(12, 1)));
  ASSERT_TRUE(w.add_tensor("b", TensorType::F32, {5}, random_bytes(20, 2)));
  ASSERT_TRUE(w.write(path));
  auto file = read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->metadata().get_uint("general.alignment").value(), 256u);
  const auto file_bytes = read_all(path);
  for (const auto& t : file->tensors()) {
    EXPECT_EQ(t.offset % 256, 0u) << t.name;
    // Where the tensor's bytes lie in the file: the data section starts aligned too.
    const auto* bytes = reinterpret_cast<const char*>(t.data);
    auto it = std::search(file_bytes.begin(), file_bytes.end(), bytes, bytes + t.nbytes);
    ASSERT_NE(it, file_bytes.end()) << t.name;
    EXPECT_EQ((it - file_bytes.begin()) % 256, 0) << t.name;
  }
  EXPECT_EQ(file->find_tensor("b")->offset, 256u);
}

TEST(GgufWriter, CopiesAModelByteForByte) {
  // add_model + write reproduces llama.cpp's own file exactly (same layout rules: v3, key order,
  // alignment 32, padding after each tensor).
  const auto dir = test::temp_dir("gguf_writer_copy");
  for (const char* rel :
       {"models/stories260K/stories260K.gguf", "models/stories260K/stories260K-Q4_0.gguf"}) {
    const std::string src = test::shared_path(rel);
    auto model = read_gguf(src);
    ASSERT_TRUE(model) << model.error().message;
    GgufWriter w;
    ASSERT_TRUE(w.add_model(*model));
    const std::string out = (dir / "copy.gguf").string();
    ASSERT_TRUE(w.write(out));
    EXPECT_TRUE(read_all(out) == read_all(src)) << rel << ": copy differs from the original";
  }
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  auto wrong_size = w.add_tensor("w", TensorType::F32, {4, 2}, std::vector<uint8_t>(31));
  ASSERT_FALSE(wrong_size);
  EXPECT_NE(wrong_size.error().message.find("'w'"), std::string::npos);
  EXPECT_NE(wrong_size.error().message.find("31"), std::string::npos);
  EXPECT_NE(wrong_size.error().message.find("32"), std::string::npos);

  auto bad_block = w.add_tensor("q", TensorType::Q8_0, {16, 2}, std::vector<uint8_t>(34));
  ASSERT_FALSE(bad_block);
  EXPECT_NE(bad_block.error().message.find("block size 32"), std::string::npos)
      << bad_block.error().message;

  auto too_many_dims = w.add_tensor("d", TensorType::F32, {1, 1, 1, 1, 1}, {0, 0, 0, 0});
  ASSERT_FALSE(too_many_dims);
  EXPECT_NE(too_many_dims.error().message.find("at most 4"), std::string::npos);

  auto negative = w.add_tensor("n", TensorType::F32, {-1}, {});
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.error().message.find("negative"), std::string::npos);

  auto overflow = w.add_tensor("o", TensorType::F32, {1ll << 32, 1ll << 32}, {});
  ASSERT_FALSE(overflow);
  EXPECT_NE(overflow.error().message.find("2^63-1"), std::string::npos);

  ASSERT_TRUE(w.add_tensor("ok", TensorType::F32, {1}, {0, 0, 0, 0}));
  auto dup = w.add_tensor("ok", TensorType::F32, {1}, {0, 0, 0, 0});
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("duplicate"), std::string::npos);
}

TEST(GgufWriter, RejectsBadMetadataAndLeavesNoFile) {
  const auto dir = test::temp_dir("gguf_writer_bad_metadata");
  const std::string path = (dir / "bad.gguf").string();
  {
    GgufWriter w;
    w.set("general.alignment", Value::u32(48));
    auto r = w.write(path);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("general.alignment"), std::string::npos);
  }
  {
    GgufWriter w;
    w.set("x", Value{ValueType::U8, uint64_t{300}});
    auto r = w.write(path);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("'x'"), std::string::npos) << r.error().message;
  }
  {
    GgufWriter w;
    w.set("mixed", Value::array(ValueType::U32, {Value::u32(1), Value::str("no")}));
    auto r = w.write(path);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("'mixed'"), std::string::npos) << r.error().message;
  }
  {
    GgufWriter w;
    const std::string missing_dir = (dir / "no_such_dir" / "m.gguf").string();
    auto r = w.write(missing_dir);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(missing_dir), std::string::npos) << r.error().message;
  }
  // Nothing was left behind: no output and no temporary file.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

}  // namespace
}  // namespace pareto::formats
