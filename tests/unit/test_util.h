#pragma once
// Shared helpers of the unit tests: temporary directories, directory listings and the
// one-line error checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace mixvae::test {

// Names in a directory, sorted: shows leftovers such as temporary files.
inline std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs f, which must throw an E whose message is one line; returns the message, and
// records a failure (returning "") for anything else.
template <class E = DataError, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
  return "";
}
template <class F>
std::string data_error_of(F&& f) {
  return error_of<DataError>(std::forward<F>(f));
}
template <class F>
std::string usage_error_of(F&& f) {
  return error_of<UsageError>(std::forward<F>(f));
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

// A fresh directory under $MIXVAE_TEST_TMP (or /tmp), removed at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("MIXVAE_TEST_TMP");
    std::filesystem::path root = base ? base : std::filesystem::temp_directory_path().string();
    std::filesystem::create_directories(root);
    std::string tmpl = (root / "mixvae-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? p : tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return *this / name; }
  // Names in the directory, sorted: shows leftovers such as temp files.
  std::vector<std::string> entries() const { return test::entries(path_); }

 private:
  std::string path_;
};

}  // namespace mixvae::test
