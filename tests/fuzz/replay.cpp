// Replays the inputs the fuzzers found (tests/fuzz/regressions/<target>/<file>) through the
// same entry points, built without libFuzzer, as the CTest test fuzz.regressions. Each
// input must end within 30 s (SIGALRM kills the test otherwise) and may only raise
// mixvae's input errors (anything else escapes and terminates the test).
//   mixvae_fuzz_replay DIR
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

extern "C" int fuzz_idx_one(const uint8_t* data, size_t size);
extern "C" int fuzz_har_one(const uint8_t* data, size_t size);
extern "C" int fuzz_npy_one(const uint8_t* data, size_t size);
extern "C" int fuzz_ini_one(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 2 || !fs::is_directory(argv[1])) {
    std::fprintf(stderr, "usage: mixvae_fuzz_replay DIR (DIR/<target>/<input>)\n");
    return 2;
  }
  const std::map<std::string, int (*)(const uint8_t*, size_t)> targets = {
      {"idx", fuzz_idx_one}, {"har", fuzz_har_one}, {"npy", fuzz_npy_one}, {"ini", fuzz_ini_one}};
  int replayed = 0;
  std::vector<fs::path> dirs{fs::directory_iterator(argv[1]), fs::directory_iterator()};
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    auto it = targets.find(dir.filename().string());
    if (it == targets.end()) {
      std::fprintf(stderr, "%s: not a fuzz target (idx, har, npy, ini)\n", dir.c_str());
      return 1;
    }
    std::vector<fs::path> files{fs::directory_iterator(dir), fs::directory_iterator()};
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto t0 = std::chrono::steady_clock::now();
      ::alarm(30);
      it->second(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ::alarm(0);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::printf("ok %s/%s (%zu bytes, %.1f ms)\n", it->first.c_str(), f.filename().c_str(), bytes.size(), ms);
      ++replayed;
    }
  }
  std::printf("%d input(s) replayed\n", replayed);
  return replayed > 0 ? 0 : 1;
}
