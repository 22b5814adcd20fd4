#pragma once
// SHA-256 checksums (lower-case hex), recorded as provenance of converted datasets.
#include <cstddef>
#include <string>

namespace mixvae::data {

// Streams the file; DataError "FILE: cannot read: ..." if it cannot be read.
std::string sha256_file(const std::string& path);

std::string sha256_bytes(const void* data, size_t size);

}  // namespace mixvae::data
