// read_gguf on hostile and broken files: every failure is a clean error naming the file and the
// problem, never a crash, a huge allocation or an out-of-bounds read (run under ASan too).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "test_util.h"

namespace pareto::formats {
namespace {

using Bytes = std::vector<uint8_t>;

// A small valid file: a few keys of different kinds and two tensors.
Bytes small_gguf(const std::filesystem::path& dir) {
  GgufWriter w;
  w.set("general.architecture", Value::str("llama"));
  w.set("test.u32", Value::u32(7));
  w.set("test.tokens", Value::str_array({"a", "bb", "ccc"}));
  w.set("test.nested", Value::array(ValueType::ARRAY, {Value::i32_array({1, 2})}));
  w.set("test.flag", Value::boolean(true));
  std::vector<uint8_t> f32(4 * 8 * 2, 1);
  EXPECT_TRUE(w.add_tensor("weight.f32", TensorType::F32, {8, 2}, f32));
  std::vector<uint8_t> q8(34 * 2, 2);
  EXPECT_TRUE(w.add_tensor("weight.q8", TensorType::Q8_0, {32, 2}, q8));
  const std::string path = (dir / "small.gguf").string();
  EXPECT_TRUE(w.write(path));
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Offset of the first occurrence of `needle` in `bytes` (must exist).
size_t find(const Bytes& bytes, const std::string& needle) {
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end()) << needle;
  return static_cast<size_t>(it - bytes.begin());
}

template <class T>
void patch(Bytes& bytes, size_t offset, T value) {
  ASSERT_LE(offset + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

class GgufBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(std::string("gguf_bad_") +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    good_ = small_gguf(dir_);
  }

  std::string write(const Bytes& bytes) {
    const std::string path = (dir_ / "broken.gguf").string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // Reads `bytes` and expects an error starting with "gguf: PATH: " that contains every part.
  std::string expect_error(const Bytes& bytes, const std::vector<std::string>& parts) {
    const std::string path = write(bytes);
    auto r = read_gguf(path);
    EXPECT_FALSE(r) << "expected an error";
    if (r) return {};
    const std::string& msg = r.error().message;
    EXPECT_EQ(msg.rfind("gguf: " + path + ": ", 0), 0u) << msg;
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return msg;
  }

  // Offsets into the small file's tensor info for `name`: of n_dims, dims, type and offset.
  struct InfoOffsets {
    size_t n_dims, dims, type, offset;
  };
  InfoOffsets info(const std::string& name) const {
    const size_t n_dims = find(good_, name) + name.size();
    uint32_t nd;
    std::memcpy(&nd, good_.data() + n_dims, 4);
    const size_t dims = n_dims + 4;
    return {n_dims, dims, dims + 8 * nd, dims + 8 * nd + 4};
  }

  std::filesystem::path dir_;
  Bytes good_;
};

TEST_F(GgufBadInput, TheUnbrokenFileReads) {
  auto r = read_gguf(write(good_));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tensors().size(), 2u);
}

TEST_F(GgufBadInput, WrongMagic) {
  Bytes b = good_;
  b[0] = 'X';
  expect_error(b, {"not a GGUF file", "58 47 55 46"});
}

TEST_F(GgufBadInput, UnsupportedVersions) {
  Bytes b = good_;
  patch<uint32_t>(b, 4, 1);
  expect_error(b, {"version 1", "not supported"});
  patch<uint32_t>(b, 4, 4);
  expect_error(b, {"unsupported GGUF version 4"});
  patch<uint32_t>(b, 4, 0x03000000u);
  expect_error(b, {"big-endian"});
  patch<uint32_t>(b, 4, 2);  // v2 has the same layout as v3
  auto r = read_gguf(write(b));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->gguf_version(), 2u);
}

TEST_F(GgufBadInput, TruncatedAtEveryLength) {
  const auto full = read_gguf(write(good_));
  ASSERT_TRUE(full);
  // The file may lose its trailing padding, but not a byte of the last tensor (68 bytes of 2s).
  const size_t data_end = find(good_, std::string(68, '\2')) + 68;
  for (size_t len = data_end; len <= good_.size(); ++len) {
    const Bytes b(good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(len));
    auto r = read_gguf(write(b));
    EXPECT_TRUE(r) << "cut to " << len << ": " << r.error().message;
  }
  for (size_t len = 0; len < data_end; ++len) {
    const Bytes b(good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(len));
    const std::string path = write(b);
    auto r = read_gguf(path);
    ASSERT_FALSE(r) << "a file cut to " << len << " bytes was accepted";
    const std::string& msg = r.error().message;
    ASSERT_EQ(msg.rfind("gguf: " + path + ": ", 0), 0u) << msg;
    // Either the field being read, a count that cannot fit in what is left, or the tensor whose
    // data is cut off.
    const bool names_field = msg.find("truncated while reading") != std::string::npos ||
                             msg.find("cannot fit") != std::string::npos;
    const bool names_tensor =
        msg.find("tensor '") != std::string::npos && msg.find("data section") != std::string::npos;
    ASSERT_TRUE(names_field || names_tensor) << "cut to " << len << ": " << msg;
  }
}

TEST_F(GgufBadInput, TruncationNamesTheField) {
  // Cut in the middle of test.u32's 4-byte value.
  const size_t value = find(good_, "test.u32") + 8 + 4;
  Bytes b(good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(value + 2));
  expect_error(b, {"truncated while reading metadata key #1 ('test.u32') value: needs 4 bytes at "
                   "offset " +
                   std::to_string(value) + ", file has " + std::to_string(value + 2)});
  // Cut inside the third string of test.tokens.
  const size_t ccc = find(good_, "ccc");
  b.assign(good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(ccc + 1));
  expect_error(b, {"metadata key #2 ('test.tokens') value item 2: needs 3 bytes"});
  // Cut inside the second tensor info's dimensions.
  const auto q8 = info("weight.q8");
  b.assign(good_.begin(), good_.begin() + static_cast<std::ptrdiff_t>(q8.dims + 3));
  expect_error(b, {"tensor info #1 ('weight.q8') dimensions: needs 8 bytes"});
}

TEST_F(GgufBadInput, TensorDataPastEndOfFile) {
  Bytes b = good_;
  patch<uint64_t>(b, info("weight.q8").offset, 1 << 20);
  expect_error(b, {"tensor 'weight.q8'", "data section"});
  patch<uint64_t>(b, info("weight.q8").offset, ~uint64_t{31});  // aligned, near 2^64
  expect_error(b, {"tensor 'weight.q8'", "data section"});
}

TEST_F(GgufBadInput, MisalignedTensorOffset) {
  Bytes b = good_;
  patch<uint64_t>(b, info("weight.q8").offset, 4);
  expect_error(b, {"tensor 'weight.q8'", "not a multiple of the alignment 32"});
}

TEST_F(GgufBadInput, HugeTensorCount) {
  Bytes b = good_;
  patch<uint64_t>(b, 8, uint64_t{1} << 63);
  expect_error(b, {"tensor count 9223372036854775808"});
}

TEST_F(GgufBadInput, HugeMetadataCount) {
  Bytes b = good_;
  patch<uint64_t>(b, 16, ~uint64_t{0});
  expect_error(b, {"metadata count 18446744073709551615"});
}

TEST_F(GgufBadInput, HugeStringLength) {
  Bytes b = good_;
  patch<uint64_t>(b, find(good_, "test.u32") - 8, ~uint64_t{0});
  expect_error(b, {"metadata key #1", "needs 18446744073709551615 bytes"});
}

TEST_F(GgufBadInput, HugeArrayCount) {
  // test.tokens: key, type (4), element type (4), count (8).
  Bytes b = good_;
  const size_t count = find(good_, "test.tokens") + 11 + 4 + 4;
  patch<uint64_t>(b, count, uint64_t{1} << 60);
  expect_error(b, {"metadata key #2 ('test.tokens')", "array count 1152921504606846976"});
}

TEST_F(GgufBadInput, DimensionsWhoseProductOverflows) {
  Bytes b = good_;
  const auto f32 = info("weight.f32");
  patch<int64_t>(b, f32.dims, int64_t{1} << 40);
  patch<int64_t>(b, f32.dims + 8, int64_t{1} << 40);
  expect_error(b, {"tensor 'weight.f32'", "2^63-1 elements"});
  patch<int64_t>(b, f32.dims, int64_t{1} << 62);  // 2^62 F32 elements: bytes overflow
  patch<int64_t>(b, f32.dims + 8, 1);
  expect_error(b, {"tensor 'weight.f32'", "2^63-1 bytes"});
  patch<int64_t>(b, f32.dims, -8);
  expect_error(b, {"tensor 'weight.f32'", "negative"});
}

TEST_F(GgufBadInput, TooManyDimensions) {
  Bytes b = good_;
  patch<uint32_t>(b, info("weight.f32").n_dims, 5);
  expect_error(b, {"tensor info #0 ('weight.f32')", "5 dimensions"});
}

TEST_F(GgufBadInput, RowNotAMultipleOfTheBlockSize) {
  Bytes b = good_;
  patch<int64_t>(b, info("weight.q8").dims, 16);
  expect_error(b, {"tensor 'weight.q8'", "not a multiple of the Q8_0 block size 32"});
}

TEST_F(GgufBadInput, UnknownTensorType) {
  Bytes b = good_;
  patch<uint32_t>(b, info("weight.q8").type, 99);
  expect_error(b, {"tensor 'weight.q8'", "unknown tensor type id 99"});
}

TEST_F(GgufBadInput, UnknownValueType) {
  Bytes b = good_;
  patch<uint32_t>(b, find(good_, "test.u32") + 8, 13);
  expect_error(b, {"metadata key #1 ('test.u32')", "unknown value type id 13"});
}

TEST_F(GgufBadInput, BoolOutOfRange) {
  Bytes b = good_;
  patch<uint8_t>(b, find(good_, "test.flag") + 9 + 4, 2);
  expect_error(b, {"metadata key #4 ('test.flag')", "0 or 1"});
}

TEST_F(GgufBadInput, DuplicateKey) {
  // Rename "test.nested" to "test.tokens" (both 11 bytes).
  Bytes b = good_;
  std::memcpy(b.data() + find(good_, "test.nested"), "test.tokens", 11);
  expect_error(b, {"metadata key #3 ('test.tokens')", "duplicate key"});
}

TEST_F(GgufBadInput, DuplicateTensorName) {
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor("aa", TensorType::F32, {1}, {0, 0, 0, 0}));
  ASSERT_TRUE(w.add_tensor("ab", TensorType::F32, {1}, {0, 0, 0, 0}));
  const std::string path = (dir_ / "dup.gguf").string();
  ASSERT_TRUE(w.write(path));
  std::ifstream in(path, std::ios::binary);
  Bytes b(std::istreambuf_iterator<char>(in), {});
  b[find(b, "ab") + 1] = 'a';
  expect_error(b, {"tensor 'aa'", "duplicate name"});
}

TEST_F(GgufBadInput, BadAlignment) {
  GgufWriter w;
  w.set("general.alignment", Value::u32(64));
  ASSERT_TRUE(w.add_tensor("t", TensorType::F32, {1}, {0, 0, 0, 0}));
  const std::string path = (dir_ / "aligned.gguf").string();
  ASSERT_TRUE(w.write(path));
  std::ifstream in(path, std::ios::binary);
  Bytes b(std::istreambuf_iterator<char>(in), {});
  const size_t value = find(b, "general.alignment") + 17 + 4;
  patch<uint32_t>(b, value, 48);
  expect_error(b, {"general.alignment", "power of two, found 48"});
  patch<uint32_t>(b, value, 0);
  expect_error(b, {"general.alignment", "power of two, found 0"});
  patch<uint32_t>(b, value - 4, static_cast<uint32_t>(ValueType::I32));
  expect_error(b, {"general.alignment", "expected U32, found I32"});
}

TEST_F(GgufBadInput, ArraysNestedTooDeeply) {
  Value v = Value::i32_array({1});
  for (int i = 0; i < 40; ++i) v = Value::array(ValueType::ARRAY, {v});
  GgufWriter w;
  w.set("deep", v);
  const std::string path = (dir_ / "deep.gguf").string();
  ASSERT_TRUE(w.write(path));
  auto r = read_gguf(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nested deeper"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
}

TEST(GgufReaderLimits, TooManyMetadataValues) {
  // A U8 array whose 2^24 + 1 items are all present: each would cost ~48 bytes in memory.
  const uint64_t count = (uint64_t{1} << 24) + 1;
  Bytes b;
  const auto put = [&b](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const uint32_t version = 3, u8_type = 0, array_type = 9;
  const uint64_t n_tensors = 0, n_kv = 1, key_len = 3;
  put("GGUF", 4);
  put(&version, 4);
  put(&n_tensors, 8);
  put(&n_kv, 8);
  put(&key_len, 8);
  put("big", 3);
  put(&array_type, 4);
  put(&u8_type, 4);
  put(&count, 8);
  b.resize(b.size() + count, 0);
  auto r = read_gguf_from_memory(b.data(), b.size(), "mem.gguf");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("gguf: mem.gguf: metadata key #0 ('big') value", 0), 0u)
      << r.error().message;
  EXPECT_NE(r.error().message.find("limit"), std::string::npos) << r.error().message;
  // The same layout with a small count reads (so the rejection above is the limit's doing).
  const uint64_t small = 5;
  std::memcpy(b.data() + b.size() - count - 8, &small, 8);
  b.resize(b.size() - count + small);
  auto ok = read_gguf_from_memory(b.data(), b.size(), "mem.gguf");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->metadata().get_int_array("big").value().size(), small);
}

TEST(GgufReaderPaths, NonexistentPath) {
  auto r = read_gguf("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("gguf: /nonexistent/dir/model.gguf: ", 0), 0u)
      << r.error().message;
}

TEST(GgufReaderPaths, DirectoryAsPath) {
  const auto dir = test::temp_dir("gguf_dir_as_path");
  auto r = read_gguf(dir.string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("gguf: " + dir.string() + ": ", 0), 0u) << r.error().message;
  EXPECT_NE(r.error().message.find("not a regular file"), std::string::npos) << r.error().message;
}

TEST(GgufReaderPaths, EmptyFile) {
  const auto dir = test::temp_dir("gguf_empty");
  const std::string path = (dir / "empty.gguf").string();
  std::ofstream(path).close();
  auto r = read_gguf(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("truncated while reading header magic"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace pareto::formats
