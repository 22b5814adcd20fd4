#pragma once
// Shared by the libFuzzer targets: the parsers under test read files, so each input is
// written to one scratch file (in /dev/shm when there is one: no disk I/O per input), and
// the two error types mixvae promises for bad input are the only allowed outcomes.
// Anything else escaping (another exception, a crash, a sanitizer report) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/errors.h"

namespace mixvae::fuzz {

inline std::string scratch_path(const char* name) {
  static const std::string dir = [] {
    std::string d =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    return d + "/mixvae-fuzz-" + std::to_string(::getpid());
  }();
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

inline std::string write_input(const char* name, const uint8_t* data, size_t size) {
  const std::string path = scratch_path(name);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f) {
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  return path;
}

template <class Fn>
void expect_only_input_errors(Fn&& fn) {
  try {
    fn();
  } catch (const mixvae::DataError&) {
  } catch (const mixvae::UsageError&) {
  }
}

}  // namespace mixvae::fuzz
