// libFuzzer target: the MNIST IDX reader (data/idx.cpp), as rank-1 (labels) and rank-3
// (images) files, plain and gzip (the reader looks at the content, not the name).
#include "data/idx.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mixvae;
  const std::string path = fuzz::write_input("input.idx", data, size);
  for (int rank : {1, 3}) fuzz::expect_only_input_errors([&] { data::read_idx_u8(path, rank); });
  return 0;
}
