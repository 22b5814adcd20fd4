// libFuzzer target: the INI parsers: a run config (core/config.cpp, Program_options, then
// the cross-key checks) and a sweep file (sweep/plan.cpp).
#include <string>

#include "core/config.h"
#include "fuzz_common.h"
#include "sweep/plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mixvae;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_input_errors([&] { RunConfig::load_text(text, "fuzz.ini").validate(); });
  const std::string path = fuzz::write_input("sweep.ini", data, size);
  fuzz::expect_only_input_errors([&] { sweep::SweepConfig::load(path, {}); });
  return 0;
}
