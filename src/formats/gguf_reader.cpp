// GGUF v2/v3 reader. The file is untrusted: every count, length and offset is checked against the
// bytes that remain before it is used, so a hostile header fails with a message instead of a huge
// allocation or an out-of-bounds read. Parsing is linear in the file size.
#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_set>

#include "formats/gguf_format.h"
#include "formats/model_file.h"

namespace pareto::formats {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes little-endian");

// Deeper nesting than this is certainly hostile (real files nest at most once) and would
// otherwise recurse once per 12 bytes of input.
constexpr int kMaxArrayDepth = 16;
// Each metadata value costs about 48 bytes in memory however few bytes it takes in the file (one
// for a U8), so the total is capped: real files hold about a million (vocabulary, merges,
// scores, types); this bound keeps a hostile file under about 1 GiB.
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;
// Counts are checked against the bytes left, but a count may still claim far more objects than a
// valid file would need; reservations beyond this grow as items are actually read.
constexpr uint64_t kMaxReserve = uint64_t{1} << 16;

// The smallest encoding of one value of a type: bounds an array count before allocating.
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::BOOL:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
      return 8;
    case ValueType::STRING:
      return 8;  // length
    case ValueType::ARRAY:
      return 12;  // element type + count
  }
  return 1;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size, const std::string& name,
             std::vector<std::shared_ptr<const MappedFile>> maps)
      : data_(data), size_(size), name_(name), maps_(std::move(maps)), metadata_(name) {}

  Result<ModelFile> parse() {
    PARETO_RETURN_IF_ERROR(read_header());
    PARETO_RETURN_IF_ERROR(read_metadata());
    PARETO_TRY(const uint64_t alignment, read_alignment());
    PARETO_RETURN_IF_ERROR(read_tensor_infos());
    PARETO_RETURN_IF_ERROR(place_tensors(alignment));
    ModelFile file(name_, "gguf", std::move(metadata_), std::move(tensors_), std::move(maps_));
    file.set_gguf_version(version_);
    return file;
  }

 private:
  template <class... Args>
  tl::unexpected<Error> fail(const Args&... args) const {
    return make_error("gguf: ", name_, ": ", args...);
  }

  // The field being read, e.g. "metadata key #3 ('llama.block_count') value item 7".
  std::string where() const {
    std::string s = field_;
    for (uint64_t i : item_path_) s += " item " + std::to_string(i);
    return s;
  }

  size_t remaining() const { return size_ - pos_; }

  tl::unexpected<Error> truncated(uint64_t need) const {
    return fail("truncated while reading ", where(), ": needs ", need, " bytes at offset ", pos_,
                ", file has ", size_);
  }

  template <class T>
  Result<T> read_pod() {
    if (remaining() < sizeof(T)) return truncated(sizeof(T));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  Result<std::string> read_string() {
    PARETO_TRY(const uint64_t len, read_pod<uint64_t>());
    if (len > remaining()) return truncated(len);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  Result<ValueType> read_value_type() {
    PARETO_TRY(const uint32_t id, read_pod<uint32_t>());
    if (id > static_cast<uint32_t>(ValueType::F64)) {
      return fail(where(), ": unknown value type id ", id, " (GGUF defines 0..12)");
    }
    return static_cast<ValueType>(id);
  }

  Result<Value> read_value(ValueType type, int depth) {
    switch (type) {
      case ValueType::U8:
        return read_unsigned<uint8_t>(type);
      case ValueType::U16:
        return read_unsigned<uint16_t>(type);
      case ValueType::U32:
        return read_unsigned<uint32_t>(type);
      case ValueType::U64:
        return read_unsigned<uint64_t>(type);
      case ValueType::I8:
        return read_signed<int8_t>(type);
      case ValueType::I16:
        return read_signed<int16_t>(type);
      case ValueType::I32:
        return read_signed<int32_t>(type);
      case ValueType::I64:
        return read_signed<int64_t>(type);
      case ValueType::F32: {
        PARETO_TRY(const float f, read_pod<float>());
        return Value{type, double{f}};
      }
      case ValueType::F64: {
        PARETO_TRY(const double d, read_pod<double>());
        return Value{type, d};
      }
      case ValueType::BOOL: {
        PARETO_TRY(const uint8_t b, read_pod<uint8_t>());
        if (b > 1) return fail(where(), ": BOOL value must be 0 or 1, found ", int{b});
        return Value{type, b == 1};
      }
      case ValueType::STRING: {
        PARETO_TRY(std::string s, read_string());
        return Value{type, std::move(s)};
      }
      case ValueType::ARRAY:
        return read_array(depth);
    }
    return fail(where(), ": unknown value type");  // unreachable: types are checked on read
  }

  template <class T>
  Result<Value> read_unsigned(ValueType type) {
    PARETO_TRY(const T v, read_pod<T>());
    return Value{type, uint64_t{v}};
  }

  template <class T>
  Result<Value> read_signed(ValueType type) {
    PARETO_TRY(const T v, read_pod<T>());
    return Value{type, int64_t{v}};
  }

  Result<Value> read_array(int depth) {
    if (depth >= kMaxArrayDepth) {
      return fail(where(), ": arrays nested deeper than ", kMaxArrayDepth, " levels");
    }
    PARETO_TRY(const ValueType elem_type, read_value_type());
    PARETO_TRY(const uint64_t count, read_pod<uint64_t>());
    const uint64_t min_size = min_encoded_size(elem_type);
    if (count > remaining() / min_size) {
      return fail(where(), ": array count ", count, " of ", value_type_name(elem_type),
                  " cannot fit in the ", remaining(), " bytes left at offset ", pos_,
                  " (each item needs at least ", min_size, "; file size ", size_, ")");
    }
    if (count > kMaxMetadataValues - n_values_) {
      return fail(where(), ": array count ", count, " exceeds the limit of ", kMaxMetadataValues,
                  " metadata values per file");
    }
    n_values_ += count;
    Array arr;
    arr.elem_type = elem_type;
    arr.items.reserve(std::min(count, kMaxReserve));
    item_path_.push_back(0);
    for (uint64_t i = 0; i < count; ++i) {
      item_path_.back() = i;
      PARETO_TRY(Value item, read_value(elem_type, depth + 1));
      arr.items.push_back(std::move(item));
    }
    item_path_.pop_back();
    return Value{ValueType::ARRAY, std::move(arr)};
  }

  Status read_header() {
    field_ = "header magic";
    if (remaining() < 4) return truncated(4);
    if (std::memcmp(data_, "GGUF", 4) != 0) {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%02x %02x %02x %02x", data_[0], data_[1], data_[2],
                    data_[3]);
      return fail("not a GGUF file: magic bytes are ", hex, ", expected 47 47 55 46 ('GGUF')");
    }
    pos_ = 4;
    field_ = "header version";
    PARETO_TRY(version_, read_pod<uint32_t>());
    if (version_ == 1) {
      return fail("GGUF version 1 is not supported (supported: 2, 3); re-convert the model");
    }
    if (version_ != 2 && version_ != 3) {
      const uint32_t swapped = __builtin_bswap32(version_);
      return fail("unsupported GGUF version ", version_, " (supported: 2, 3)",
                  (swapped == 2 || swapped == 3) ? "; the file is big-endian" : "");
    }
    field_ = "header tensor count";
    PARETO_TRY(n_tensors_, read_pod<uint64_t>());
    field_ = "header metadata count";
    PARETO_TRY(n_kv_, read_pod<uint64_t>());
    if (n_kv_ > remaining() / kMinKvBytes) {
      return fail("header: metadata count ", n_kv_, " cannot fit in the ", remaining(),
                  " bytes after the header (each entry needs at least ", kMinKvBytes, ")");
    }
    if (n_tensors_ > remaining() / kMinTensorInfoBytes) {
      return fail("header: tensor count ", n_tensors_, " cannot fit in the ", remaining(),
                  " bytes after the header (each tensor info needs at least ", kMinTensorInfoBytes,
                  ")");
    }
    return ok();
  }

  Status read_metadata() {
    for (uint64_t i = 0; i < n_kv_; ++i) {
      field_ = "metadata key #" + std::to_string(i);
      PARETO_TRY(std::string key, read_string());
      const std::string field = field_ + " ('" + key + "')";
      field_ = field + " type";
      PARETO_TRY(const ValueType type, read_value_type());
      field_ = field + " value";
      PARETO_TRY(Value value, read_value(type, 0));
      if (metadata_.contains(key)) return fail(field, ": duplicate key");
      if (++n_values_ > kMaxMetadataValues) {
        return fail(field, ": more than ", kMaxMetadataValues, " metadata values in the file");
      }
      metadata_.set(std::move(key), std::move(value));
    }
    return ok();
  }

  Result<uint64_t> read_alignment() {
    const Value* v = metadata_.find(kAlignmentKey);
    if (v == nullptr) return kDefaultAlignment;
    const auto* u = std::get_if<uint64_t>(&v->data);
    if (u == nullptr || v->type != ValueType::U32) {
      return fail("metadata key '", kAlignmentKey, "': expected U32, found ",
                  value_type_name(v->type));
    }
    if (*u == 0 || !std::has_single_bit(*u)) {
      return fail("metadata key '", kAlignmentKey, "': expected a power of two, found ", *u);
    }
    return *u;
  }

  Status read_tensor_infos() {
    if (n_tensors_ > remaining() / kMinTensorInfoBytes) {
      return fail("header: tensor count ", n_tensors_, " cannot fit in the ", remaining(),
                  " bytes after the metadata at offset ", pos_);
    }
    tensors_.reserve(std::min(n_tensors_, kMaxReserve));
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      TensorInfo t;
      field_ = "tensor info #" + std::to_string(i) + " name";
      PARETO_TRY(t.name, read_string());
      const std::string field = "tensor info #" + std::to_string(i) + " ('" + t.name + "')";
      field_ = field + " dimension count";
      PARETO_TRY(const uint32_t n_dims, read_pod<uint32_t>());
      if (n_dims > kMaxDims) {
        return fail(field, ": ", n_dims, " dimensions, at most ", kMaxDims, " are allowed");
      }
      field_ = field + " dimensions";
      t.shape.resize(n_dims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        PARETO_TRY(t.shape[d], read_pod<int64_t>());
      }
      field_ = field + " type";
      PARETO_TRY(const uint32_t type_id, read_pod<uint32_t>());
      field_ = field + " offset";
      PARETO_TRY(t.offset, read_pod<uint64_t>());

      const auto tr = tensor_type_traits(type_id);
      if (!tr) return fail("tensor '", t.name, "': unknown tensor type id ", type_id);
      t.type = static_cast<TensorType>(type_id);
      PARETO_TRY(t.nbytes, tensor_nbytes(t.name, t.type, t.shape));
      tensors_.push_back(std::move(t));
    }
    // Views into tensors_, whose storage no longer moves.
    std::unordered_set<std::string_view> names;
    names.reserve(tensors_.size());
    for (const auto& t : tensors_) {
      if (!names.insert(t.name).second) return fail("tensor '", t.name, "': duplicate name");
    }
    return ok();
  }

  Result<uint64_t> tensor_nbytes(const std::string& name, TensorType type,
                                 const std::vector<int64_t>& shape) const {
    auto r = checked_tensor_nbytes(type, shape);
    if (!r) return fail("tensor '", name, "': ", r.error().message);
    return *r;
  }

  Status place_tensors(uint64_t alignment) {
    // The data section starts at the first aligned offset after the tensor infos.
    const uint64_t pad = (alignment - pos_ % alignment) % alignment;
    const uint64_t data_start = pad <= remaining() ? pos_ + pad : size_;
    const uint64_t data_size = size_ - data_start;
    for (auto& t : tensors_) {
      if (t.offset % alignment != 0) {
        return fail("tensor '", t.name, "': data offset ", t.offset,
                    " is not a multiple of the alignment ", alignment);
      }
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        return fail("tensor '", t.name, "': data at offset ", t.offset, " (+", data_start,
                    " data section start) needs ", t.nbytes, " bytes, but the data section has ",
                    data_size, " (file size ", size_, ")");
      }
      t.data = data_ + data_start + t.offset;
    }
    return ok();
  }

  const uint8_t* data_;
  size_t size_;
  const std::string& name_;
  std::vector<std::shared_ptr<const MappedFile>> maps_;  // handed to the ModelFile
  size_t pos_ = 0;
  std::string field_;
  std::vector<uint64_t> item_path_;  // indices of the array items being read, outermost first
  uint64_t n_values_ = 0;            // keys and array items so far, against kMaxMetadataValues
  uint32_t version_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
};

}  // namespace

Result<uint64_t> checked_tensor_nbytes(TensorType type, const std::vector<int64_t>& shape) {
  const auto tr = tensor_type_traits(static_cast<uint32_t>(type));
  if (!tr) return make_error("unknown tensor type id ", static_cast<uint32_t>(type));
  if (shape.size() > kMaxDims) {
    return make_error(shape.size(), " dimensions, at most ", kMaxDims, " are allowed");
  }
  uint64_t n = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) {
      return make_error("dimension ", d, " is negative in shape ", shape_string(shape));
    }
    const auto dim = static_cast<uint64_t>(shape[d]);
    if (dim != 0 && n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) {
      return make_error("shape ", shape_string(shape), " has more than 2^63-1 elements");
    }
    n *= dim;
  }
  const uint64_t ne0 = shape.empty() ? 1 : static_cast<uint64_t>(shape[0]);
  const auto block = static_cast<uint64_t>(tr->block_size);
  if (ne0 % block != 0) {
    return make_error("dimension 0 (", ne0, ") is not a multiple of the ", tr->name, " block size ",
                      block);
  }
  const uint64_t blocks = n / block;
  const auto block_bytes = static_cast<uint64_t>(tr->block_bytes);
  if (blocks > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / block_bytes) {
    return make_error("shape ", shape_string(shape), " of ", tr->name,
                      " needs more than 2^63-1 bytes");
  }
  return blocks * block_bytes;
}

Result<ModelFile> read_gguf_from_memory(const uint8_t* data, size_t size, const std::string& name) {
  return GgufParser(data, size, name, {}).parse();
}

Result<ModelFile> read_gguf(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped) return make_error("gguf: ", mapped.error().message);
  auto map = std::make_shared<const MappedFile>(std::move(*mapped));
  const uint8_t* data = map->data();
  const size_t size = map->size();
  return GgufParser(data, size, path, {std::move(map)}).parse();
}

}  // namespace pareto::formats
