#include "formats/gguf_writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "formats/gguf_format.h"

namespace pareto::formats {
namespace {

uint64_t align_up(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

// Buffered writes to a FILE*, remembering the first failure.
class Sink {
 public:
  explicit Sink(FILE* f) : f_(f) {}
  void bytes(const void* p, size_t n) {
    if (ok_ && n > 0 && std::fwrite(p, 1, n, f_) != n) {
      ok_ = false;
      err_ = errno;
    }
    written_ += n;
  }
  template <class T>
  void pod(T v) {
    bytes(&v, sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void zeros(uint64_t n) {
    static constexpr uint8_t kZeros[64] = {};
    while (n > 0) {
      const size_t k = n < sizeof(kZeros) ? static_cast<size_t>(n) : sizeof(kZeros);
      bytes(kZeros, k);
      n -= k;
    }
  }
  bool ok() const { return ok_; }
  int error_code() const { return err_; }
  uint64_t written() const { return written_; }

 private:
  FILE* f_;
  bool ok_ = true;
  int err_ = 0;
  uint64_t written_ = 0;
};

// Checks that a value's payload matches its declared type before anything is written, so a
// malformed Value fails with a message instead of producing an unreadable file.
Status check_value(const std::string& key, const Value& v) {
  const auto bad = [&](std::string_view what) {
    return make_error("gguf writer: metadata key '", key, "': ", value_type_name(v.type), " value ",
                      what);
  };
  const auto unsigned_max = [](ValueType t) -> uint64_t {
    switch (t) {
      case ValueType::U8:
        return std::numeric_limits<uint8_t>::max();
      case ValueType::U16:
        return std::numeric_limits<uint16_t>::max();
      case ValueType::U32:
        return std::numeric_limits<uint32_t>::max();
      default:
        return std::numeric_limits<uint64_t>::max();
    }
  };
  const auto signed_range = [](ValueType t) -> std::pair<int64_t, int64_t> {
    switch (t) {
      case ValueType::I8:
        return {INT8_MIN, INT8_MAX};
      case ValueType::I16:
        return {INT16_MIN, INT16_MAX};
      case ValueType::I32:
        return {INT32_MIN, INT32_MAX};
      default:
        return {INT64_MIN, INT64_MAX};
    }
  };
  switch (v.type) {
    case ValueType::U8:
    case ValueType::U16:
    case ValueType::U32:
    case ValueType::U64: {
      const auto* u = std::get_if<uint64_t>(&v.data);
      if (u == nullptr) return bad("does not hold an unsigned integer");
      if (*u > unsigned_max(v.type)) return bad(str_cat(*u, " is out of range"));
      return ok();
    }
    case ValueType::I8:
    case ValueType::I16:
    case ValueType::I32:
    case ValueType::I64: {
      const auto* s = std::get_if<int64_t>(&v.data);
      if (s == nullptr) return bad("does not hold a signed integer");
      const auto [lo, hi] = signed_range(v.type);
      if (*s < lo || *s > hi) return bad(str_cat(*s, " is out of range"));
      return ok();
    }
    case ValueType::F32:
    case ValueType::F64:
      if (!std::holds_alternative<double>(v.data)) return bad("does not hold a float");
      return ok();
    case ValueType::BOOL:
      if (!std::holds_alternative<bool>(v.data)) return bad("does not hold a bool");
      return ok();
    case ValueType::STRING:
      if (!std::holds_alternative<std::string>(v.data)) return bad("does not hold a string");
      return ok();
    case ValueType::ARRAY: {
      const auto* arr = std::get_if<Array>(&v.data);
      if (arr == nullptr) return bad("does not hold an array");
      for (size_t i = 0; i < arr->items.size(); ++i) {
        if (arr->items[i].type != arr->elem_type) {
          return bad(str_cat("item ", i, " has type ", value_type_name(arr->items[i].type),
                             ", the array's element type is ", value_type_name(arr->elem_type)));
        }
        PARETO_RETURN_IF_ERROR(check_value(key, arr->items[i]));
      }
      return ok();
    }
  }
  return bad("has an unknown type");
}

// Writes the payload of a checked value (without its type tag).
void write_payload(Sink& out, const Value& v) {
  switch (v.type) {
    case ValueType::U8:
      out.pod(static_cast<uint8_t>(std::get<uint64_t>(v.data)));
      break;
    case ValueType::U16:
      out.pod(static_cast<uint16_t>(std::get<uint64_t>(v.data)));
      break;
    case ValueType::U32:
      out.pod(static_cast<uint32_t>(std::get<uint64_t>(v.data)));
      break;
    case ValueType::U64:
      out.pod(std::get<uint64_t>(v.data));
      break;
    case ValueType::I8:
      out.pod(static_cast<int8_t>(std::get<int64_t>(v.data)));
      break;
    case ValueType::I16:
      out.pod(static_cast<int16_t>(std::get<int64_t>(v.data)));
      break;
    case ValueType::I32:
      out.pod(static_cast<int32_t>(std::get<int64_t>(v.data)));
      break;
    case ValueType::I64:
      out.pod(std::get<int64_t>(v.data));
      break;
    case ValueType::F32:
      out.pod(static_cast<float>(std::get<double>(v.data)));
      break;
    case ValueType::F64:
      out.pod(std::get<double>(v.data));
      break;
    case ValueType::BOOL:
      out.pod(static_cast<uint8_t>(std::get<bool>(v.data) ? 1 : 0));
      break;
    case ValueType::STRING:
      out.str(std::get<std::string>(v.data));
      break;
    case ValueType::ARRAY: {
      const auto& arr = std::get<Array>(v.data);
      out.pod(static_cast<uint32_t>(arr.elem_type));
      out.pod<uint64_t>(arr.items.size());
      for (const auto& item : arr.items) write_payload(out, item);
      break;
    }
  }
}

}  // namespace

void GgufWriter::set(std::string key, Value value) {
  if (key == kAlignmentKey) {
    // An invalid value is kept as given and rejected by write().
    const auto* u = std::get_if<uint64_t>(&value.data);
    alignment_ = 0;
    if (u != nullptr && value.type == ValueType::U32 && std::has_single_bit(*u)) {
      alignment_ = static_cast<uint32_t>(*u);
    }
  }
  metadata_.set(std::move(key), std::move(value));
}

Status GgufWriter::add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                              std::vector<uint8_t> data) {
  if (name.empty()) return make_error("gguf writer: tensor with an empty name");
  for (const auto& t : tensors_) {
    if (t.name == name) return make_error("gguf writer: tensor '", name, "': duplicate name");
  }
  auto nbytes = checked_tensor_nbytes(type, shape);
  if (!nbytes) return make_error("gguf writer: tensor '", name, "': ", nbytes.error().message);
  if (data.size() != *nbytes) {
    return make_error("gguf writer: tensor '", name, "': data has ", data.size(), " bytes, its ",
                      type_name(type), " shape needs ", *nbytes);
  }
  tensors_.push_back(Tensor{std::move(name), type, std::move(shape), std::move(data)});
  return ok();
}

Status GgufWriter::add_model(const ModelFile& model) {
  for (const auto& [key, value] : model.metadata().entries()) set(key, value);
  for (const auto& t : model.tensors()) {
    std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
    PARETO_RETURN_IF_ERROR(add_tensor(t.name, t.type, t.shape, std::move(bytes)));
  }
  return ok();
}

Status GgufWriter::write(const std::string& path) const {
  if (alignment_ == 0) {
    return make_error("gguf writer: ", path, ": metadata key '", kAlignmentKey,
                      "' must be a U32 power of two");
  }
  for (const auto& [key, value] : metadata_.entries()) {
    PARETO_RETURN_IF_ERROR(check_value(key, value));
  }

  std::string tmp_path = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp_path.data());
  if (fd < 0) {
    return make_error("gguf writer: ", path,
                      ": cannot create a temporary file beside it: ", std::strerror(errno));
  }
  ::fchmod(fd, 0644);
  FILE* f = ::fdopen(fd, "wb");
  if (f == nullptr) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return make_error("gguf writer: ", tmp_path, ": fdopen failed: ", std::strerror(err));
  }

  Sink out(f);
  out.bytes("GGUF", 4);
  out.pod<uint32_t>(kGgufVersion);
  out.pod<uint64_t>(tensors_.size());
  out.pod<uint64_t>(metadata_.entries().size());
  for (const auto& [key, value] : metadata_.entries()) {
    out.str(key);
    out.pod(static_cast<uint32_t>(value.type));
    write_payload(out, value);
  }
  uint64_t offset = 0;  // from the start of the data section
  for (const auto& t : tensors_) {
    out.str(t.name);
    out.pod(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) out.pod(d);
    out.pod(static_cast<uint32_t>(t.type));
    out.pod(offset);
    offset = align_up(offset + t.data.size(), alignment_);
  }
  out.zeros(align_up(out.written(), alignment_) - out.written());
  for (const auto& t : tensors_) {
    out.bytes(t.data.data(), t.data.size());
    out.zeros(align_up(t.data.size(), alignment_) - t.data.size());
  }

  const bool flushed = std::fflush(f) == 0;
  const int flush_err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!out.ok() || !flushed || !closed) {
    ::unlink(tmp_path.c_str());
    const int err = !out.ok() ? out.error_code() : flush_err;
    return make_error("gguf writer: ", path, ": write failed: ", std::strerror(err));
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_path.c_str());
    return make_error("gguf writer: ", path,
                      ": cannot rename the temporary file into place: ", std::strerror(err));
  }
  return ok();
}

}  // namespace pareto::formats
