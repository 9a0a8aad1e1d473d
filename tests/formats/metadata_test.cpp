// Metadata's typed getters: conversions they allow and the errors they give.
#include <gtest/gtest.h>

#include <string>

#include "formats/model_file.h"

namespace pareto::formats {
namespace {

Metadata sample() {
  Metadata md("/models/m.gguf");
  md.set("u32", Value::u32(7));
  md.set("i32_negative", Value::i32(-3));
  md.set("u64_huge", Value::u64(~uint64_t{0}));
  md.set("f32", Value::f32(0.5f));
  md.set("name", Value::str("llama"));
  md.set("flag", Value::boolean(true));
  md.set("tokens", Value::str_array({"a", "b"}));
  md.set("scores", Value::f32_array({1.0f, -2.0f}));
  md.set("types", Value::i32_array({1, 6}));
  return md;
}

void expect_error_with(const std::string& msg, std::initializer_list<std::string> parts) {
  for (const auto& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(Metadata, GettersConvertCompatibleTypes) {
  const Metadata md = sample();
  EXPECT_EQ(md.get_uint("u32").value(), 7u);
  EXPECT_EQ(md.get_int("u32").value(), 7);
  EXPECT_EQ(md.get_int("i32_negative").value(), -3);
  EXPECT_EQ(md.get_uint("u64_huge").value(), ~uint64_t{0});
  EXPECT_EQ(md.get_float("f32").value(), 0.5);
  EXPECT_EQ(md.get_string("name").value(), "llama");
  EXPECT_TRUE(md.get_bool("flag").value());
  EXPECT_EQ(md.get_string_array("tokens").value(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(md.get_float_array("scores").value(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(md.get_int_array("types").value(), (std::vector<int64_t>{1, 6}));
}

TEST(Metadata, SetReplacesInPlace) {
  Metadata md = sample();
  md.set("u32", Value::u32(9));
  EXPECT_EQ(md.entries().front().first, "u32");
  EXPECT_EQ(md.get_uint("u32").value(), 9u);
  EXPECT_EQ(md.entries().size(), sample().entries().size());
}

TEST(Metadata, ErrorsNameSourceKeyAndTypes) {
  const Metadata md = sample();
  auto missing = md.get_uint("llama.block_count");
  ASSERT_FALSE(missing);
  expect_error_with(missing.error().message, {"/models/m.gguf", "missing", "'llama.block_count'"});

  auto wrong = md.get_uint("name");
  ASSERT_FALSE(wrong);
  expect_error_with(wrong.error().message, {"/models/m.gguf", "'name'", "integer", "STRING"});

  auto negative = md.get_uint("i32_negative");
  ASSERT_FALSE(negative);
  expect_error_with(negative.error().message, {"'i32_negative'", "-3"});

  auto too_big = md.get_int("u64_huge");
  ASSERT_FALSE(too_big);
  expect_error_with(too_big.error().message, {"'u64_huge'", "18446744073709551615"});

  auto not_float = md.get_float("u32");
  ASSERT_FALSE(not_float);
  expect_error_with(not_float.error().message, {"'u32'", "F32", "U32"});

  auto not_strings = md.get_string_array("scores");
  ASSERT_FALSE(not_strings);
  expect_error_with(not_strings.error().message, {"'scores'", "ARRAY of STRING", "ARRAY of F32"});

  auto not_ints = md.get_int_array("tokens");
  ASSERT_FALSE(not_ints);
  expect_error_with(not_ints.error().message, {"'tokens'", "ARRAY of STRING"});

  auto not_bool = md.get_bool("u32");
  ASSERT_FALSE(not_bool);
  expect_error_with(not_bool.error().message, {"'u32'", "BOOL", "U32"});
}

}  // namespace
}  // namespace pareto::formats
