#include "formats/model_file.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>

namespace pareto::formats {
namespace {

std::string describe(const Value& v) {
  if (v.type != ValueType::ARRAY) return std::string(value_type_name(v.type));
  const auto* arr = std::get_if<Array>(&v.data);
  if (arr == nullptr) return "ARRAY";
  return str_cat("ARRAY of ", value_type_name(arr->elem_type));
}

bool is_integer_type(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::U16:
    case ValueType::I16:
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::U64:
    case ValueType::I64:
      return true;
    default:
      return false;
  }
}

// Integer values are stored as uint64_t (unsigned types) or int64_t (signed types).
struct IntegerView {
  bool negative = false;
  uint64_t magnitude_or_value = 0;  // the value when !negative
  int64_t signed_value = 0;         // valid when negative
};

std::optional<IntegerView> integer_of(const Value& v) {
  if (!is_integer_type(v.type)) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(&v.data)) return IntegerView{false, *u, 0};
  if (const auto* s = std::get_if<int64_t>(&v.data)) {
    if (*s < 0) return IntegerView{true, 0, *s};
    return IntegerView{false, static_cast<uint64_t>(*s), 0};
  }
  return std::nullopt;
}

std::optional<double> float_of(const Value& v) {
  if (v.type != ValueType::F32 && v.type != ValueType::F64) return std::nullopt;
  if (const auto* d = std::get_if<double>(&v.data)) return *d;
  return std::nullopt;
}

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8:
      return "U8";
    case ValueType::I8:
      return "I8";
    case ValueType::U16:
      return "U16";
    case ValueType::I16:
      return "I16";
    case ValueType::U32:
      return "U32";
    case ValueType::I32:
      return "I32";
    case ValueType::F32:
      return "F32";
    case ValueType::BOOL:
      return "BOOL";
    case ValueType::STRING:
      return "STRING";
    case ValueType::ARRAY:
      return "ARRAY";
    case ValueType::U64:
      return "U64";
    case ValueType::I64:
      return "I64";
    case ValueType::F64:
      return "F64";
  }
  return "UNKNOWN";
}

Value Value::str_array(const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(Value::str(s));
  return Value::array(ValueType::STRING, std::move(items));
}

Value Value::f32_array(const std::vector<float>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (float f : v) items.push_back(Value::f32(f));
  return Value::array(ValueType::F32, std::move(items));
}

Value Value::i32_array(const std::vector<int32_t>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (int32_t i : v) items.push_back(Value::i32(i));
  return Value::array(ValueType::I32, std::move(items));
}

bool operator==(const Array& a, const Array& b) {
  return a.elem_type == b.elem_type && a.items == b.items;
}

bool operator==(const Value& a, const Value& b) {
  return a.type == b.type && a.data == b.data;
}

// ---------------------------------------------------------------------------------------------
// Metadata

void Metadata::set(std::string key, Value value) {
  if (auto it = index_.find(key); it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
}

const Value* Metadata::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

namespace {

// "<source>: metadata key 'k': " (source omitted when empty).
std::string key_prefix(const std::string& source, std::string_view key) {
  if (source.empty()) return str_cat("metadata key '", key, "': ");
  return str_cat(source, ": metadata key '", key, "': ");
}

}  // namespace

#define PARETO_FIND_KEY_OR_FAIL(var, key)                                                         \
  const Value* var = find(key);                                                                   \
  if (var == nullptr) {                                                                           \
    return make_error(source_.empty() ? std::string() : source_ + ": ", "missing metadata key '", \
                      key, "'");                                                                  \
  }

Result<uint64_t> Metadata::get_uint(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto iv = integer_of(*v);
  if (!iv) return make_error(key_prefix(source_, key), "expected an integer, found ", describe(*v));
  if (iv->negative) {
    return make_error(key_prefix(source_, key), "expected a value >= 0, found ", iv->signed_value);
  }
  return iv->magnitude_or_value;
}

Result<int64_t> Metadata::get_int(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto iv = integer_of(*v);
  if (!iv) return make_error(key_prefix(source_, key), "expected an integer, found ", describe(*v));
  if (iv->negative) return iv->signed_value;
  if (iv->magnitude_or_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error(key_prefix(source_, key), "value ", iv->magnitude_or_value,
                      " does not fit in int64");
  }
  return static_cast<int64_t>(iv->magnitude_or_value);
}

Result<double> Metadata::get_float(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto f = float_of(*v);
  if (!f) return make_error(key_prefix(source_, key), "expected F32 or F64, found ", describe(*v));
  return *f;
}

Result<bool> Metadata::get_bool(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto* b = std::get_if<bool>(&v->data);
  if (v->type != ValueType::BOOL || b == nullptr) {
    return make_error(key_prefix(source_, key), "expected BOOL, found ", describe(*v));
  }
  return *b;
}

Result<std::string> Metadata::get_string(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto* s = std::get_if<std::string>(&v->data);
  if (v->type != ValueType::STRING || s == nullptr) {
    return make_error(key_prefix(source_, key), "expected STRING, found ", describe(*v));
  }
  return *s;
}

Result<std::vector<std::string>> Metadata::get_string_array(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto* arr = std::get_if<Array>(&v->data);
  if (v->type != ValueType::ARRAY || arr == nullptr || arr->elem_type != ValueType::STRING) {
    return make_error(key_prefix(source_, key), "expected ARRAY of STRING, found ", describe(*v));
  }
  std::vector<std::string> out;
  out.reserve(arr->items.size());
  for (const auto& item : arr->items) {
    const auto* s = std::get_if<std::string>(&item.data);
    if (s == nullptr) {
      return make_error(key_prefix(source_, key), "item ", out.size(), " is not a STRING");
    }
    out.push_back(*s);
  }
  return out;
}

Result<std::vector<float>> Metadata::get_float_array(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto* arr = std::get_if<Array>(&v->data);
  if (v->type != ValueType::ARRAY || arr == nullptr ||
      (arr->elem_type != ValueType::F32 && arr->elem_type != ValueType::F64)) {
    return make_error(key_prefix(source_, key), "expected ARRAY of F32 or F64, found ",
                      describe(*v));
  }
  std::vector<float> out;
  out.reserve(arr->items.size());
  for (const auto& item : arr->items) {
    const auto f = float_of(item);
    if (!f) return make_error(key_prefix(source_, key), "item ", out.size(), " is not a float");
    out.push_back(static_cast<float>(*f));
  }
  return out;
}

Result<std::vector<int64_t>> Metadata::get_int_array(std::string_view key) const {
  PARETO_FIND_KEY_OR_FAIL(v, key);
  const auto* arr = std::get_if<Array>(&v->data);
  if (v->type != ValueType::ARRAY || arr == nullptr || !is_integer_type(arr->elem_type)) {
    return make_error(key_prefix(source_, key), "expected ARRAY of integers, found ", describe(*v));
  }
  std::vector<int64_t> out;
  out.reserve(arr->items.size());
  for (const auto& item : arr->items) {
    const auto iv = integer_of(item);
    if (!iv) return make_error(key_prefix(source_, key), "item ", out.size(), " is not an integer");
    if (iv->negative) {
      out.push_back(iv->signed_value);
    } else if (iv->magnitude_or_value >
               static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return make_error(key_prefix(source_, key), "item ", out.size(), " value ",
                        iv->magnitude_or_value, " does not fit in int64");
    } else {
      out.push_back(static_cast<int64_t>(iv->magnitude_or_value));
    }
  }
  return out;
}

#undef PARETO_FIND_KEY_OR_FAIL

// ---------------------------------------------------------------------------------------------
// TensorInfo, ModelFile

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

ModelFile::ModelFile(std::string path, std::string format, Metadata metadata,
                     std::vector<TensorInfo> tensors,
                     std::vector<std::shared_ptr<const MappedFile>> maps)
    : path_(std::move(path)),
      format_(std::move(format)),
      metadata_(std::move(metadata)),
      tensors_(std::move(tensors)),
      maps_(std::move(maps)) {
  tensor_index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) tensor_index_.emplace(tensors_[i].name, i);
}

const TensorInfo* ModelFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

bool ModelFile::release_pages(const void* p, size_t n) const {
  for (const auto& map : maps_) {
    if (map && map->release_pages(p, n)) return true;
  }
  return false;
}

bool ModelFile::is_mapped(const void* p, size_t n) const {
  const auto* first = static_cast<const uint8_t*>(p);
  for (const auto& map : maps_) {
    if (map && first >= map->data() && n <= map->size() &&
        static_cast<size_t>(first - map->data()) <= map->size() - n) {
      return true;
    }
  }
  return false;
}

uint64_t ModelFile::data_bytes() const {
  uint64_t total = 0;
  for (const auto& t : tensors_) total += t.nbytes;
  return total;
}

Result<ModelFile> open_model_file(const std::string& path, const std::string& tokenizer_path) {
  // Peek at the magic without mapping the file twice; read errors fall through to the readers,
  // whose messages name the path and the reason.
  char magic[4] = {};
  bool is_gguf = false;
  {
    std::ifstream in(path, std::ios::binary);
    if (in && in.read(magic, 4)) is_gguf = std::memcmp(magic, "GGUF", 4) == 0;
  }
  if (is_gguf) return read_gguf(path);
  if (tokenizer_path.empty()) {
    PARETO_TRY(const MappedFile probe, MappedFile::open(path));  // reports missing files etc.
    (void)probe;
    return make_error(path, ": not a GGUF file (no 'GGUF' magic) and no tokenizer given, which a ",
                      "llama2.c checkpoint needs");
  }
  return read_llama2c(path, tokenizer_path);
}

}  // namespace pareto::formats
