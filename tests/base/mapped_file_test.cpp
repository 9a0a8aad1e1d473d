#include "base/mapped_file.h"

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"

namespace pareto {
namespace {

// release_pages drops resident pages of a range inside the mapping, and the bytes read back the
// same afterwards; ranges outside the mapping are refused and left alone.
TEST(MappedFile, ReleasedPagesStayReadable) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t size = 5 * page + 123;
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 131 + 7);
  const auto path = test::temp_dir("mapped_file") / "pages.bin";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(size));
  }
  auto file = MappedFile::open(path.string());
  ASSERT_TRUE(file.has_value()) << file.error().message;
  const uint8_t* data = file->data();
  ASSERT_EQ(file->size(), size);
  EXPECT_EQ(std::vector<uint8_t>(data, data + size), bytes);

  EXPECT_TRUE(file->release_pages(data + 100, 3 * page));  // interior pages only
  EXPECT_TRUE(file->release_pages(data, size));            // the whole mapping
  EXPECT_TRUE(file->release_pages(data + 10, 20));         // no whole page: nothing to do
  EXPECT_EQ(std::vector<uint8_t>(data, data + size), bytes);

  EXPECT_FALSE(file->release_pages(data + size - 10, 20));  // runs past the end
  EXPECT_FALSE(file->release_pages(data - page, page));     // before the start
  EXPECT_FALSE(file->release_pages(bytes.data(), page));    // heap memory, not this mapping
  EXPECT_EQ(bytes[1], static_cast<uint8_t>(131 + 7));       // ...left untouched
}

}  // namespace
}  // namespace pareto
