// libFuzzer target: the .npy reader (data/npy.cpp): header dict, dtype, shape, order,
// byte count, then the float-matrix and label views the converters use.
#include "data/npy.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mixvae;
  const std::string path = fuzz::write_input("input.npy", data, size);
  fuzz::expect_only_input_errors([&] {
    data::NpyArray a = data::read_npy(path);
    int64_t n = 0, d = 0;
    fuzz::expect_only_input_errors([&] { data::npy_matrix(a, &n, &d); });
    fuzz::expect_only_input_errors([&] { data::npy_labels(a); });
  });
  return 0;
}
