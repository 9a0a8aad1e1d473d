// A read-only memory map of a whole file. Weights stay in the page cache; nothing is copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace pareto {

class MappedFile {
 public:
  // Errors name the path and the reason (missing file, a directory, permission, ...).
  static Result<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops from this process's resident set the whole pages inside [p, p + n), which must lie in
  // this mapping (madvise MADV_DONTNEED on the page-aligned interior); the bytes stay readable and
  // fault back in from the page cache on the next read. For data kept in another form (packed
  // weights), so that RSS does not hold both copies. False (nothing done) when the range is not
  // inside this mapping or madvise fails.
  bool release_pages(const void* p, size_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pareto
