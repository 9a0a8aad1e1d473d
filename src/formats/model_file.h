// ModelFile: what every weight format reader produces. Metadata (GGUF key/value model) plus
// tensor views pointing into a read-only mmap; the model loader and tokenizer see only this, so
// GGUF and llama2.c checkpoints load through one path.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "base/mapped_file.h"
#include "base/result.h"
#include "base/tensor_type.h"

namespace pareto::formats {

// GGUF metadata value types (gguf_type).
enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
std::string_view value_type_name(ValueType t);

struct Value;
struct Array {
  ValueType elem_type = ValueType::U8;
  std::vector<Value> items;  // arrays may nest (elem_type ARRAY)
};

// One metadata value. Integers are widened to (u)int64, floats to double; `type` keeps the
// type as stored so a writer round-trips it exactly.
struct Value {
  ValueType type = ValueType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;

  static Value u8(uint8_t v) { return {ValueType::U8, uint64_t{v}}; }
  static Value u32(uint32_t v) { return {ValueType::U32, uint64_t{v}}; }
  static Value u64(uint64_t v) { return {ValueType::U64, v}; }
  static Value i32(int32_t v) { return {ValueType::I32, int64_t{v}}; }
  static Value i64(int64_t v) { return {ValueType::I64, v}; }
  static Value f32(float v) { return {ValueType::F32, double{v}}; }
  static Value f64(double v) { return {ValueType::F64, v}; }
  static Value boolean(bool v) { return {ValueType::BOOL, v}; }
  static Value str(std::string v) { return {ValueType::STRING, std::move(v)}; }
  static Value array(ValueType elem, std::vector<Value> items) {
    return {ValueType::ARRAY, Array{elem, std::move(items)}};
  }
  static Value str_array(const std::vector<std::string>& v);
  static Value f32_array(const std::vector<float>& v);
  static Value i32_array(const std::vector<int32_t>& v);
};

// Same stored type and same value (items compared recursively; floats compare as doubles).
bool operator==(const Array& a, const Array& b);
bool operator==(const Value& a, const Value& b);

// Heterogeneous string lookup for unordered_map<std::string, ...> keyed by string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Ordered key/value metadata. Typed getters fail with a message naming the source file, the key,
// the type expected and the type found.
class Metadata {
 public:
  explicit Metadata(std::string source = {}) : source_(std::move(source)) {}

  void set(std::string key, Value value);  // replaces an existing key; O(1) amortized
  const Value* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  const std::string& source() const { return source_; }

  Result<uint64_t> get_uint(std::string_view key) const;  // any integer type, >= 0
  Result<int64_t> get_int(std::string_view key) const;    // any integer type
  Result<double> get_float(std::string_view key) const;   // F32 or F64
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;

 private:
  std::string source_;
  std::vector<std::pair<std::string, Value>> entries_;
  // key -> index into entries_, so lookups stay O(1) for files with many keys.
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> index_;
};

// A tensor inside a mapped file. shape[0] is the contiguous dimension (GGUF's ne[0]): a weight
// matrix of `rows` outputs and `cols` inputs has shape {cols, rows}.
struct TensorInfo {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;            // from the start of the file's data section
  const uint8_t* data = nullptr;  // into the mmap; valid while the ModelFile lives
  uint64_t nbytes = 0;

  int64_t n_elements() const;
  int64_t cols() const { return shape.empty() ? 1 : shape[0]; }
  int64_t rows() const { return cols() == 0 ? 0 : n_elements() / cols(); }
};

class ModelFile {
 public:
  ModelFile() = default;
  ModelFile(std::string path, std::string format, Metadata metadata,
            std::vector<TensorInfo> tensors, std::vector<std::shared_ptr<const MappedFile>> maps);

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }  // "gguf" or "llama2c"
  uint32_t gguf_version() const { return gguf_version_; }
  void set_gguf_version(uint32_t v) { gguf_version_ = v; }
  const Metadata& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  uint64_t data_bytes() const;  // sum of tensor sizes
  // MappedFile::release_pages on the mapping that holds [p, p + n); false when none does (e.g. a
  // llama2.c file's converted tensors, which live on the heap).
  bool release_pages(const void* p, size_t n) const;
  // Whether [p, p + n) lies inside one of this file's mappings (not a converted heap tensor).
  bool is_mapped(const void* p, size_t n) const;

 private:
  std::string path_;
  std::string format_;
  uint32_t gguf_version_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
  std::vector<std::shared_ptr<const MappedFile>> maps_;  // keep the bytes alive
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> tensor_index_;
};

// Reads a GGUF v2 or v3 file over mmap. Every offset, size and count is checked against the
// file before use; errors name the file and the field.
// Errors read "gguf: PATH: ...".
Result<ModelFile> read_gguf(const std::string& path);

// Parses GGUF bytes already in memory (used by read_gguf and the fuzzer). `name` stands for the
// path in error messages. Tensor views point into `data`, which must outlive the result.
Result<ModelFile> read_gguf_from_memory(const uint8_t* data, size_t size, const std::string& name);

// Reads a llama2.c version-0 checkpoint and its tokenizer.bin, exposing them with GGUF names and
// metadata (llama.*, tokenizer.ggml.*) exactly as llama.cpp's convert-llama2c-to-ggml would.
Result<ModelFile> read_llama2c(const std::string& checkpoint_path,
                               const std::string& tokenizer_path);

// Parses a llama2.c checkpoint and its tokenizer.bin already in memory (used by read_llama2c and
// the fuzzer). The names stand for the paths in error messages. Tensor views point into
// `checkpoint`, which must outlive the result; the tokenizer's bytes are copied.
Result<ModelFile> read_llama2c_from_memory(std::span<const uint8_t> checkpoint,
                                           const std::string& checkpoint_name,
                                           std::span<const uint8_t> tokenizer,
                                           const std::string& tokenizer_name);

// Opens either format: GGUF by its magic; otherwise a llama2.c checkpoint (needs tokenizer_path).
Result<ModelFile> open_model_file(const std::string& path, const std::string& tokenizer_path = {});

}  // namespace pareto::formats
