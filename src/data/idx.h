#pragma once
// Reader for IDX files (the MNIST distribution format), gzip-compressed or plain.
//
// Layout, all integers big-endian: magic 0x00 0x00 TYPE RANK, then RANK uint32 dims,
// then prod(dims) elements. Only TYPE 0x08 (unsigned byte) is supported.
#include <cstdint>
#include <string>
#include <vector>

namespace mixvae::data {

struct IdxArray {
  std::vector<int32_t> dims;
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

// Reads the whole file and checks it strictly: magic, element type, rank ==
// expected_rank, positive dims, and exactly prod(dims) payload bytes (a short file is
// "truncated: expected X bytes of pixel data, found Y"; extra bytes are an error too).
// Every problem, including corrupt gzip data, is a DataError naming `path`.
IdxArray read_idx_u8(const std::string& path, int expected_rank);

}  // namespace mixvae::data
