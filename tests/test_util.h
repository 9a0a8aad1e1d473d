// Shared helpers for tests: locating ../shared and temporary files.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace pareto::test {

// $PARETO_SHARED, else ../shared beside the repository. Tests that need it fail (not skip) when it
// is missing, so a broken checkout cannot pass silently.
inline std::string shared_dir() {
  if (const char* env = std::getenv("PARETO_SHARED"); env && *env) return env;
  return PARETO_DEFAULT_SHARED;
}

inline std::string shared_path(const std::string& rel) {
  const std::string p = shared_dir() + "/" + rel;
  EXPECT_TRUE(std::filesystem::exists(p)) << "missing test data: " << p
                                          << " (set PARETO_SHARED to the shared/ folder)";
  return p;
}

// A fresh directory under the build tree for files a test writes. Each test gets its own (the
// running test's name is appended): ctest runs the tests of one fixture in parallel processes,
// which must not remove each other's files.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(PARETO_BINARY_DIR) / "test_tmp" / name;
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    dir /= std::string(info->test_suite_name()) + "." + info->name();
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace pareto::test
